// Coordination: cluster mode's shared state for models, on NATS JetStream (docs/SCALE.md, "Cluster mode: models").
// - The trainer lease: a key in a key-value bucket whose messages expire after the lease period (the bucket's TTL).
//   A replica takes it only if the key is absent (create), and keeps it by rewriting it conditionally on the
//   revision it last wrote; a holder that stops renewing loses it when the key expires, and another takes it.
// - Model blobs: a stream of chunks (subject accelsel.models.<version>), each blob described by a ModelRef with the
//   SHA-256 of the whole; fetched back by stream sequence and checked against it.
// - The serving pointer: one key in a second bucket, written by the lease holder only and conditionally on the
//   revision it last read, so that a former holder that lost the lease cannot move it back.
// - Control: admin calls (retrain, pin, rollback) received by any replica go to the lease holder as NATS requests.
// - Settings: a third bucket of operator state (catalogue entries, quarantined nodes; docs/SCALE.md, "Cluster mode:
//   catalogue and quarantine"), one key per item, plain puts (the last writer wins), watched by every replica.
// JetStream does the replication and the ordering; nothing here replicates anything itself.
//
// Thread safety: every method may be called from any thread. Ownership: owns its own NATS connection (separate
// from the run stream's, so that a long model transfer never delays reports). Built without libnats-dev, Open fails
// with FAILED_PRECONDITION.
#ifndef ACCELSEL_CLUSTER_COORDINATION_H_
#define ACCELSEL_CLUSTER_COORDINATION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster/run_stream.h"

namespace accelsel::cluster {

struct CoordinationOptions {
  // How long a trainer lease lasts without renewal: the bucket's TTL. A dead trainer is replaced within about two.
  absl::Duration lease_period = absl::Seconds(10);
  // Copies JetStream keeps of the buckets and the model stream (as RunStreamOptions::replicas).
  int replicas = 1;
  std::string lease_bucket = "ACCELSEL_TRAINER";
  std::string pointer_bucket = "ACCELSEL_SERVING";
  // Operator settings: no TTL, one revision per key kept (the current value is all a replica applies).
  std::string settings_bucket = "ACCELSEL_SETTINGS";
  std::string model_stream = "ACCELSEL_MODELS";
  // Older model chunks are dropped beyond this many bytes in the model stream (a replica can no longer fetch a
  // version that old; it keeps serving what it has).
  int64_t model_stream_max_bytes = int64_t{1} << 30;
  // Bytes per model chunk: under NATS's default 1 MiB message limit.
  size_t chunk_bytes = 512 * 1024;
  // Subject of admin requests to the lease holder.
  std::string control_subject = "accelsel.control.trainer";
};

// Where a published model blob lies in the model stream.
struct ModelRef {
  uint64_t version = 0;
  uint64_t first_sequence = 0;  // stream sequences of its first and last chunks; the others lie between, in order
  uint64_t last_sequence = 0;
  uint32_t chunks = 0;
  uint64_t bytes = 0;
  std::string sha256;  // hex, of the whole blob
};

// The serving pointer as stored, with the key-value revision it was read at (0 = no pointer yet).
struct PointerValue {
  uint64_t revision = 0;
  std::string value;
};

class Coordination {
 public:
  static bool Available();
  // Connects and creates the buckets and the model stream if missing (existing ones keep their settings).
  static absl::StatusOr<std::unique_ptr<Coordination>> Open(const RunStreamOptions& connection,
                                                            const CoordinationOptions& options);
  virtual ~Coordination() = default;

  // Takes the trainer lease for `holder` if nobody holds it, or renews it if `holder` does. True: `holder` holds it
  // for a lease period from now. False: another replica does (`current_holder` says which, when known).
  virtual absl::StatusOr<bool> HoldLease(std::string_view holder, std::string* current_holder) = 0;
  // Gives the lease up at once (on shutdown), if `holder` still holds it.
  virtual void ReleaseLease(std::string_view holder) = 0;

  virtual absl::StatusOr<ModelRef> PublishModel(uint64_t version, std::string_view blob) = 0;
  // The blob `ref` points to; DATA_LOSS when a chunk is missing or the digest differs.
  virtual absl::StatusOr<std::string> FetchModel(const ModelRef& ref) = 0;

  virtual absl::StatusOr<PointerValue> GetPointer() = 0;
  // Writes the pointer only if its revision is still `expected_revision` (0: only if there is none); returns the
  // new revision, FAILED_PRECONDITION when another write came first.
  virtual absl::StatusOr<uint64_t> SetPointer(std::string_view value, uint64_t expected_revision) = 0;

  // The lease holder answers admin requests with `handler` (called on a NATS thread, one request at a time).
  using ControlHandler = std::function<std::string(std::string_view request)>;
  virtual absl::Status ServeControl(ControlHandler handler) = 0;
  virtual void StopServingControl() = 0;
  // Sends an admin request to the lease holder and waits for its answer: UNAVAILABLE when no replica holds the lease,
  // DEADLINE_EXCEEDED after `timeout`, CANCELLED soon after `*cancel` turns true (a shutdown; may be null).
  virtual absl::StatusOr<std::string> Control(std::string_view request, absl::Duration timeout,
                                              const std::atomic<bool>* cancel) = 0;

  // Writes one settings key (keys: [-/_=.a-zA-Z0-9], not starting or ending with '.'); UNAVAILABLE when NATS is away.
  virtual absl::Status PutSetting(std::string_view key, std::string_view value) = 0;
  // Writes one settings key only if the bucket has no value for it: true when written, false when it had one.
  // UNAVAILABLE when NATS is away.
  virtual absl::StatusOr<bool> CreateSetting(std::string_view key, std::string_view value) = 0;
  // Calls `on_change` for every key's current value, then `on_initial_done` once, then for every later change
  // (`deleted`: the key was deleted or purged; `value` is then empty), in the bucket's order, one at a time, on a
  // thread this object owns. Once per object (FAILED_PRECONDITION the second time). The callbacks run until
  // StopWatchingSettings (or the destructor) returns; they must not call StopWatchingSettings.
  using SettingHandler = std::function<void(std::string_view key, std::string_view value, bool deleted)>;
  virtual absl::Status WatchSettings(SettingHandler on_change, std::function<void()> on_initial_done) = 0;
  virtual void StopWatchingSettings() = 0;
};

// SHA-256 of `data`, lower-case hex.
std::string Sha256Hex(std::string_view data);

}  // namespace accelsel::cluster

#endif  // ACCELSEL_CLUSTER_COORDINATION_H_
