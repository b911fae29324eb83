// ClusterDecisions: cluster mode's decision stream (docs/SCALE.md, "Cluster mode: decisions"). A node may ask one
// replica for a decision and report the run through another, and every replica applies every run from the run
// stream; for each to join the run with its decision, every replica must hold every replica's decisions. Two
// threads:
// - the publisher takes this replica's decisions as the decision log's writer hands them over (after logging them,
//   never on the Select path), and publishes them to a JetStream stream of their own, `<--nats_stream>_DECISIONS`,
//   with the decision id as the message id. A queue beyond its bound, or NATS away, drops them (counted): the
//   decision log is a log, not a promise.
// - the applier consumes that stream from the position stored in this replica's store and hands the other replicas'
//   decisions to the decision log (DecisionLog::RecordForeignDecisions, which waits rather than drops; a delivery that
//   dropped messages or stalls starts over after the last one handed over, as ClusterIngest's does), where a run
//   that arrived first waits for its decision up to DecisionLogOptions::join_wait. The position is stored at most
//   once a second, after the log has written what came before it: a restart delivers at most that second again,
//   and the log writes those records once more, unchanged.
//
// Thread safety: Publish from any thread (the decision log's writer); Stop from one thread at a time, idempotent
// (and called by the destructor); Publish after Stop drops. Ownership: owns the RunStream and both threads; borrows the
// store, the decision log and the metrics, which must outlive it.
#ifndef ACCELSEL_SERVER_CLUSTER_DECISIONS_H_
#define ACCELSEL_SERVER_CLUSTER_DECISIONS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cluster/run_stream.h"
#include "server/decision_log.h"
#include "server/metrics.h"
#include "server/options.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// Store meta key of the last decision-stream sequence this replica's log holds everything up to.
inline constexpr char kClusterDecisionSequenceKey[] = "cluster_decision_sequence";

// The decision stream's settings, derived from the run stream's: name `<stream>_DECISIONS`, subject
// `<subject>.decisions`, the same servers, credentials, TLS and replicas, and the decision log's retention.
cluster::RunStreamOptions DecisionStreamOptions(const ClusterOptions& cluster, const DecisionLogOptions& log);

class ClusterDecisions {
 public:
  // Connects, creates the stream if missing, and starts applying it after the stored position. `replica_id`: this
  // replica's (its own decisions coming back are skipped).
  static absl::StatusOr<std::unique_ptr<ClusterDecisions>> Start(const ClusterOptions& cluster,
                                                                 const DecisionLogOptions& log_options,
                                                                 std::string replica_id, storage::TelemetryStore* store,
                                                                 DecisionLog* log, Metrics* metrics);
  ~ClusterDecisions();

  // Takes decisions of this replica, as (decision id, stored bytes), for the stream. Never blocks.
  void Publish(std::vector<std::pair<std::string, std::string>> decisions) ABSL_LOCKS_EXCLUDED(mu_);
  // Publishes one more batch of what is queued (the rest is dropped, counted), then stops both threads.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ClusterDecisions(const ClusterOptions& cluster, std::string replica_id, size_t queue_capacity,
                   storage::TelemetryStore* store, DecisionLog* log, Metrics* metrics,
                   std::unique_ptr<cluster::RunStream> stream, uint64_t applied);
  void PublishLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void ApplyLoop();
  void StorePosition(uint64_t sequence);

  const std::string replica_id_;
  const size_t max_batch_;
  const size_t queue_capacity_;
  storage::TelemetryStore* const store_;  // not owned
  DecisionLog* const log_;                // not owned
  const Metrics::ClusterSeries& series_;
  std::unique_ptr<cluster::RunStream> stream_;
  std::atomic<bool> stop_applier_{false};
  absl::Mutex mu_;
  std::deque<std::pair<std::string, std::string>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Applier thread only.
  uint64_t applied_ = 0;
  std::thread publisher_;
  std::thread applier_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_CLUSTER_DECISIONS_H_
