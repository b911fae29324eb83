// RunStream: cluster mode's one dependency on NATS JetStream. Replicas publish validated run reports to a replicated
// stream and each applies the stream, in order, to its own store; JetStream provides the replication, ordering,
// deduplication by message id and durability (docs/SCALE.md, "Cluster mode: reports"). Nothing here replicates or
// orders anything itself.
//
// Thread safety: PublishBatch may be called by one thread at a time (the publisher), NextBatch by one thread at a
// time (the applier); the two may run at once. Connected() and the destructor may be called from any thread, the
// destructor only once neither call is running. Ownership: the object owns its NATS connection and subscription.
// Built without libnats-dev (cnats not found by CMake), Open fails with FAILED_PRECONDITION and Available() is false.
#ifndef ACCELSEL_CLUSTER_RUN_STREAM_H_
#define ACCELSEL_CLUSTER_RUN_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace accelsel::cluster {

struct RunStreamOptions {
  // NATS server URLs (nats://host:port); the connection fails over between them and reconnects forever.
  std::vector<std::string> servers;
  // The stream, created if missing with the settings below (an existing stream keeps its own settings).
  std::string stream = "ACCELSEL_RUNS";
  std::string subject = "accelsel.runs";
  // Copies JetStream keeps of each message (1, 3 or 5 in practice; at most the number of NATS servers).
  int replicas = 1;
  // JetStream drops a message whose id it saw within this window; older repeats are caught by the run id on apply.
  absl::Duration duplicate_window = absl::Minutes(2);
  // The stream's retention when it creates the stream: messages older than max_age, or beyond max_bytes (oldest
  // dropped first), are removed; zero = unlimited. A replica that had not applied a removed message cannot catch up
  // from the stream any more (docs/SCALE.md, "Retention").
  absl::Duration max_age = absl::ZeroDuration();
  int64_t max_bytes = 0;
  // Messages the client library buffers for the applier before it drops the rest (a slow consumer); a drop is
  // repaired by subscribing again after the last applied message, so this bounds memory, not correctness.
  int pending_messages = 1 << 18;
  // How long PublishBatch waits for the stream's acknowledgements of one batch.
  absl::Duration publish_timeout = absl::Seconds(5);
  // How long Open waits for the first connection and for each JetStream API call.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Authentication and TLS of the connection; empty = not used. Each is checked when Open is called, and an error
  // names the flag that set it (--nats_creds, --nats_user, --nats_tls_ca, --nats_tls_cert, --nats_tls_key).
  std::string creds_file;  // NATS user credentials (JWT and seed), as `nsc` writes them
  std::string user;        // user and password, for a server configured with them
  std::string password;
  std::string tls_ca_file;    // PEM CA bundle the server's certificate must chain to; set = TLS required
  std::string tls_cert_file;  // PEM client certificate chain and key, for servers that verify clients (both or none)
  std::string tls_key_file;
};

struct PublishItem {
  std::string_view msg_id;  // the run id: JetStream deduplicates on it
  std::string_view data;    // the serialized report
};

struct PublishOutcome {
  absl::Status status;     // OK: the stream acknowledged the message (stored or deduplicated)
  bool duplicate = false;  // the stream had the message id already (within the duplicate window)
};

struct StreamMessage {
  uint64_t sequence = 0;  // the message's sequence in the stream
  uint64_t pending = 0;   // messages after this one the stream holds for this consumer when it was delivered
  std::string data;
};

class RunStream {
 public:
  // Whether this build has the NATS client.
  static bool Available();
  // Connects (within connect_timeout), creates the stream if it does not exist. UNAVAILABLE when no server answers.
  static absl::StatusOr<std::unique_ptr<RunStream>> Open(const RunStreamOptions& options);
  virtual ~RunStream() = default;

  // Publishes every item asynchronously, then waits (at most publish_timeout) for all their acknowledgements: one
  // round trip per batch, not per item. `out` receives one outcome per item, in order. An item not acknowledged in
  // time, or published while the connection is down, is UNAVAILABLE; it may still reach the stream later, which its
  // message id makes harmless.
  virtual void PublishBatch(const std::vector<PublishItem>& items, std::vector<PublishOutcome>* out) = 0;

  // Starts the ordered delivery of the stream's messages after sequence `after_sequence` (0 = from the start),
  // before NextBatch; called again (by the applier) to start over after a message the delivery dropped.
  virtual absl::Status Subscribe(uint64_t after_sequence) = 0;
  // Waits at most `wait` for the next message, then takes whatever else is already delivered, up to `max` in all,
  // in stream order. OK with `out` empty when nothing came in time.
  virtual absl::Status NextBatch(size_t max, absl::Duration wait, std::vector<StreamMessage>* out) = 0;

  // Whether the connection to NATS is up now.
  virtual bool Connected() = 0;

  // The stream's bounds now, from JetStream's stream info: the sequences of its first and last messages (an empty
  // stream: first = last + 1; a new one: 0 and 0).
  struct Bounds {
    uint64_t first = 0;
    uint64_t last = 0;
  };
  virtual absl::StatusOr<Bounds> State() = 0;
};

}  // namespace accelsel::cluster

#endif  // ACCELSEL_CLUSTER_RUN_STREAM_H_
