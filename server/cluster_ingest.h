// ClusterIngest: cluster mode's counterpart of IngestQueue (docs/SCALE.md, "Cluster mode: reports"). Two threads:
// - the publisher takes every report waiting (up to max_batch), publishes them all to the JetStream stream with
//   their run ids as message ids, waits for the stream's acknowledgements of the whole batch, and hands each
//   stream its reports back through IngestSink::OnCommitted: acknowledged ones OK (kStored, or kDuplicate when the
//   stream had the id already), the others with UNAVAILABLE, exactly as a failed store write is answered, so the
//   client resends them. Nothing is acknowledged that the stream does not hold.
// - the applier consumes the stream in order from the sequence after the one stored in this replica's store, and
//   appends each batch of messages with AppendRunsWithMeta, the new position in the same WriteBatch. The run-id
//   check of AppendRuns makes the apply idempotent; `on_applied` (observed statistics, trainer counters, decision
//   joins) sees the runs this replica stored, so every replica's state follows the stream, not its own clients.
// A replica is caught up once it applied the stream up to the stream's last sequence as of Start (at once when it
// already had, or the stream was empty); the server reports SERVING in its health check only from then on.
//
// Thread safety: Submit from any number of threads, also concurrently with Stop; Stop is idempotent (and called by
// the destructor). mu_ guards the hand-over to the publisher, ready_mu_ the caught-up flag and its callback; the
// batch being published and the applier's state belong to their threads. Ownership: owns the RunStream and both
// threads; borrows the store, the metrics and every sink (until its reports came back), which must outlive it.
#ifndef ACCELSEL_SERVER_CLUSTER_INGEST_H_
#define ACCELSEL_SERVER_CLUSTER_INGEST_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cluster/run_stream.h"
#include "server/ingest_queue.h"
#include "server/metrics.h"
#include "server/options.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// Store meta key of the last stream sequence applied to this store.
inline constexpr char kClusterAppliedSequenceKey[] = "cluster_applied_sequence";

// Shared by a replica's two stream consumers (ClusterIngest, ClusterDecisions), once their publisher was told to
// stop: joins it, then stops and joins the applier, then closes the stream.
void StopStreamThreads(std::thread& publisher, std::atomic<bool>& stop_applier, std::thread& applier,
                       std::unique_ptr<cluster::RunStream>& stream);
// Starts the delivery again after sequence `after`, retried every 0.5 s until it works or `stop` turns true; each
// failure is logged as `event`.
void ResubscribeUntilStopped(cluster::RunStream& stream, uint64_t after, const std::atomic<bool>& stop,
                             const char* event);

class ClusterIngest {
 public:
  // Connects to NATS, creates the stream if missing, and starts applying it after the stored position.
  static absl::StatusOr<std::unique_ptr<ClusterIngest>> Start(const ClusterOptions& options,
                                                              storage::TelemetryStore* store, Metrics* metrics,
                                                              IngestQueue::OnStored on_applied);
  ~ClusterIngest();

  // Never blocks on NATS.
  void Submit(IngestSink* sink, std::unique_ptr<v1::RunReport> report, uint64_t sequence) ABSL_LOCKS_EXCLUDED(mu_);
  // Publishes (or fails) everything submitted so far, then stops both threads.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The last stream sequence applied to the store.
  uint64_t applied_sequence() const { return applied_sequence_.load(std::memory_order_acquire); }
  // The stream's last sequence when Start asked; caught up = applied up to it.
  uint64_t catch_up_sequence() const { return catch_up_sequence_; }
  bool caught_up() const ABSL_LOCKS_EXCLUDED(ready_mu_);
  // Runs `fn` once this replica is caught up: at once, on the calling thread, when it is already; otherwise on the
  // applier thread when it gets there (never, if it is stopped first). One callback at a time; a second replaces it.
  void OnCaughtUp(std::function<void()> fn) ABSL_LOCKS_EXCLUDED(ready_mu_);

 private:
  struct Pending {
    IngestSink* sink;
    IngestItem item;
    absl::Status status;  // the stream's answer for this report
  };
  ClusterIngest(const ClusterOptions& options, storage::TelemetryStore* store, Metrics* metrics,
                IngestQueue::OnStored on_applied, std::unique_ptr<cluster::RunStream> stream, uint64_t applied,
                uint64_t catch_up_sequence);
  void PublishLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void ApplyLoop();
  // The applier: delivery again from after `after` (a message the delivery dropped), retried until it works or stops.
  void Resubscribe(uint64_t after);
  // Hands each sink its reports of the batch: OK ones in one call, failed ones in another.
  void Complete();
  // The constructor or the applier thread: marks the replica caught up (once) and runs the callback, if any.
  void MarkCaughtUp() ABSL_LOCKS_EXCLUDED(ready_mu_);

  const ClusterOptions options_;
  storage::TelemetryStore* const store_;  // not owned
  const Metrics::ClusterSeries& series_;
  const IngestQueue::OnStored on_applied_;
  std::unique_ptr<cluster::RunStream> stream_;
  std::atomic<uint64_t> applied_sequence_;
  std::atomic<bool> stop_applier_{false};
  const uint64_t catch_up_sequence_;
  const absl::Time started_;
  mutable absl::Mutex ready_mu_;
  bool caught_up_ ABSL_GUARDED_BY(ready_mu_) = false;
  std::function<void()> on_caught_up_ ABSL_GUARDED_BY(ready_mu_);
  absl::Mutex mu_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Publisher thread only.
  std::vector<Pending> batch_;
  std::thread publisher_;
  std::thread applier_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_CLUSTER_INGEST_H_
