// ClusterSettings: the operator's state — the strategy catalogue (definitions and retired flags) and the quarantined
// nodes — replicated through a NATS key-value bucket, so that an operator call on any replica takes effect on all
// (docs/SCALE.md, "Cluster mode: catalogue and quarantine").
// - Keys: strategy.<hex of the id> -> the serialized v1::Strategy, retired flag included; quarantine.<hex of the
//   node id> -> "1" (quarantined) or "0" (released). One key per item: two operators changing different items at
//   once both win; the same item: the last write wins.
// - Writes: the caller applies a change locally first (its checks and answers unchanged), then publishes the
//   resulting state of that item here. A write the watch already shows is skipped, so re-registering an unchanged
//   strategy costs nothing.
// - Applies: a watch of the bucket hands every value (the current ones at start, then each change, the replica's own
//   writes included) to the appliers on the watch thread. Applying never publishes, so nothing loops.
//
// Thread safety: Publish* from any thread; the appliers run on one thread, one at a time. Ownership: owns its own
// Coordination (its own NATS connection: a settings write never waits behind a model transfer) and the watch;
// borrows what the appliers touch, which must outlive Stop.
#ifndef ACCELSEL_SERVER_CLUSTER_SETTINGS_H_
#define ACCELSEL_SERVER_CLUSTER_SETTINGS_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.pb.h"
#include "cluster/coordination.h"
#include "server/options.h"

namespace accelsel::server {

class ClusterSettings {
 public:
  // Apply one replicated item to this replica: idempotent, and never publishing.
  struct Appliers {
    std::function<void(const v1::Strategy& strategy)> strategy;
    std::function<void(const std::string& node_id, bool quarantined)> quarantine;
  };
  // Connects, creates the bucket if missing, and returns once the bucket's current values were applied (UNAVAILABLE
  // when they did not arrive within `initial_timeout`).
  static absl::StatusOr<std::unique_ptr<ClusterSettings>> Start(const ClusterOptions& options, Appliers appliers,
                                                                absl::Duration initial_timeout = absl::Seconds(30));
  ~ClusterSettings() { Stop(); }
  // Stops the watch: no applier runs once it returns. Idempotent.
  void Stop();

  // Publish the state of one item as this replica now has it. UNAVAILABLE when NATS is away: the change stays on
  // this replica only until it is made again.
  absl::Status PublishStrategy(const v1::Strategy& strategy) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status PublishQuarantine(absl::string_view node_id, bool quarantined) ABSL_LOCKS_EXCLUDED(mu_);

  // Publishes the items this replica holds and the bucket lacks, so that a store joining a cluster (a single-process
  // store switched to cluster mode, a replica restored from an old backup) brings its own strategies and quarantined
  // nodes. An item the bucket has keeps the bucket's value (written only if absent), which the watch applied here
  // already. Returns how many were written; UNAVAILABLE at the first write NATS refused.
  absl::StatusOr<size_t> PublishAbsent(const std::vector<v1::Strategy>& strategies,
                                       const std::set<std::string>& quarantined) ABSL_LOCKS_EXCLUDED(mu_);

  static std::string StrategyKey(absl::string_view id);
  static std::string QuarantineKey(absl::string_view node_id);

 private:
  ClusterSettings(std::unique_ptr<cluster::Coordination> coordination, Appliers appliers)
      : coordination_(std::move(coordination)), appliers_(std::move(appliers)) {}
  absl::Status Publish(const std::string& key, const std::string& value) ABSL_LOCKS_EXCLUDED(mu_);
  // On the watch thread.
  void OnChange(absl::string_view key, absl::string_view value, bool deleted) ABSL_LOCKS_EXCLUDED(mu_);
  void Apply(absl::string_view key, absl::string_view value, bool deleted) ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<cluster::Coordination> coordination_;
  const Appliers appliers_;
  absl::Mutex mu_;
  // Every key's value as the watch last delivered it: what the bucket holds, as far as this replica knows.
  absl::flat_hash_map<std::string, std::string> seen_ ABSL_GUARDED_BY(mu_);
  bool initial_done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_CLUSTER_SETTINGS_H_
