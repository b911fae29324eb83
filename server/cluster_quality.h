// ClusterQuality: GetLiveQuality over the whole cluster (docs/SCALE.md, "Cluster mode: live quality"). Each replica
// logs only the decisions it served, and a reported run is joined on the replica that served its decision, so one
// replica's figures cover about 1/N of the cluster's. The replica asked sends one broadcast (cluster/coordination.h)
// to every replica, reads its own log meanwhile, gathers the others' figures for a bounded time and merges them
// (MergeLiveQuality). A replica that does not answer in time is left out; the answer says how many were in.
//
// Thread safety: Quality from any number of threads; the broadcast handler runs on a NATS thread. Ownership: borrows
// the Coordination (the cluster models' connection), which must outlive it; `local` must stay callable until Stop
// returns (Stop waits for a handler that is running).
#ifndef ACCELSEL_SERVER_CLUSTER_QUALITY_H_
#define ACCELSEL_SERVER_CLUSTER_QUALITY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.pb.h"
#include "cluster/coordination.h"

namespace accelsel::server {

// The figures of several disjoint sets of decisions as one: counts add; mape and coverage80 are averaged weighted by
// scored_reports, follow_rate by joined_reports, exploration_share by decisions, mean_regret_log by regret_reports
// (by joined_reports x follow_rate for a part that does not carry it).
v1::LiveQuality MergeLiveQualityFigures(const std::vector<const v1::LiveQuality*>& parts);

// Several replicas' answers as one: the overall figures merged; versions merged by version (newest first, the
// held-out figures of any part that has them); nodes merged by node_id, the highest mape first, at most `top_nodes`
// (a node's runs may have been joined on several replicas); truncated and decision_log_enabled when any part says
// so; window_ms the first part's; replicas the sum of the parts' (a part with 0 counts as 1); replica_ids joined.
v1::GetLiveQualityResponse MergeLiveQuality(const std::vector<v1::GetLiveQualityResponse>& parts, uint32_t top_nodes);

class ClusterQuality {
 public:
  // This replica's own figures for a request (the decision log's, already validated).
  using LocalQuality = std::function<absl::Status(const v1::GetLiveQualityRequest&, v1::GetLiveQualityResponse*)>;

  // Starts answering the other replicas' requests. `gather_window`: how long an asker waits for the others.
  static absl::StatusOr<std::unique_ptr<ClusterQuality>> Start(cluster::Coordination* coordination,
                                                               std::string replica_id, LocalQuality local,
                                                               absl::Duration gather_window);
  ~ClusterQuality();
  // Stops answering the others and waits for an answer being computed now.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // A Quality call gathering now returns CANCELLED at once (shutdown, before the workers are awaited).
  void CancelCalls() { cancel_.store(true); }

  // This replica's figures merged with those of every replica that answered within the gather window. `request`
  // must be valid (top_nodes > 0). Fails only when this replica's own figures cannot be read or on shutdown; the
  // others being unreachable gives a partial answer (replicas says how many are in).
  absl::Status Quality(const v1::GetLiveQualityRequest& request, v1::GetLiveQualityResponse* response)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ClusterQuality(cluster::Coordination* coordination, std::string replica_id, LocalQuality local,
                 absl::Duration gather_window);
  // Another replica's request: this replica's figures, or nothing for its own request or once stopping.
  std::string Handle(absl::string_view request) ABSL_LOCKS_EXCLUDED(mu_);

  cluster::Coordination* const coordination_;  // not owned
  const std::string id_;
  const LocalQuality local_;
  const absl::Duration gather_window_;
  std::atomic<bool> cancel_{false};

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int handling_ ABSL_GUARDED_BY(mu_) = 0;  // requests being answered now
  // The most other replicas that ever answered one request: a gather that has as many stops early (after a linger).
  size_t peers_seen_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_CLUSTER_QUALITY_H_
