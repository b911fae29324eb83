// ClusterModels: one trainer for the whole cluster, and every replica serving the version it promoted (docs/SCALE.md,
// "Cluster mode: models"). A thread ticks every second or so (a quarter of the lease period when shorter):
// 1. the lease: a replica that runs the trainer takes or renews the trainer lease (cluster/coordination.h); it
//    counts as the trainer only until 90 % of a lease period after its last successful write, so it stops before
//    another can take the key. The model manager's trainer retrains only while it holds it.
// 2. follow: when the serving pointer moved, the replica loads the version it names (from its own store when it
//    has that very blob, else fetched from the model stream and checked by digest) and serves it, pinned or not.
// 3. lead: the trainer, once in step with the pointer, publishes its serving version when it differs from the
//    pointer's (a promotion, pin, unpin or rollback it made): the blob to the model stream, then the pointer,
//    conditionally on the revision it last read.
// Retrain, PinModel and RollbackModel called on any replica run on the trainer (forwarded as NATS requests); the
// calling replica then follows the pointer before it answers, so its GetModelInfo shows the outcome at once.
//
// Thread safety: public methods from any thread; tick_mu_ makes the ticks (thread, forwarded calls) one at a time.
// Ownership: owns the Coordination and the thread; borrows the model manager, the store and the metrics, which must
// outlive it (Stop before the model manager stops).
#ifndef ACCELSEL_SERVER_CLUSTER_MODELS_H_
#define ACCELSEL_SERVER_CLUSTER_MODELS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "accelsel/v1/accelsel.pb.h"
#include "cluster/coordination.h"
#include "server/metrics.h"
#include "server/model_manager.h"
#include "server/options.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// The serving pointer's contents: which version serves, whether pinned, where its blob lies, its info, who wrote it.
struct ServingPointer {
  uint64_t version = 0;
  bool pinned = false;
  cluster::ModelRef ref;
  v1::ModelVersionInfo info;
  std::string writer;
};
std::string EncodePointer(const ServingPointer& p);
absl::StatusOr<ServingPointer> DecodePointer(absl::string_view text);
// A replica's id when --replica_id is not set: the host name and the process id.
std::string DefaultReplicaId();

class ClusterModels {
 public:
  // Connects (its own NATS connection), creates the buckets and the model stream if missing, follows the pointer
  // once, and starts the tick thread. `trainer_enabled`: this replica may take the lease (--trainer).
  static absl::StatusOr<std::unique_ptr<ClusterModels>> Start(const ClusterOptions& options, bool trainer_enabled,
                                                              storage::TelemetryStore* store, ModelManager* models,
                                                              Metrics* metrics);
  ~ClusterModels();
  // Gives the lease up (another replica takes it within a tick), stops answering forwarded calls and the thread.
  void Stop() ABSL_LOCKS_EXCLUDED(stop_mu_, tick_mu_);

  // A forwarded call waiting for the trainer returns CANCELLED at once (shutdown, before the workers are awaited).
  void CancelCalls() { cancel_.store(true); }

  bool trainer() const { return trainer_.load(std::memory_order_acquire); }
  const std::string& id() const { return id_; }

  absl::StatusOr<v1::ModelVersionInfo> Retrain() ABSL_LOCKS_EXCLUDED(tick_mu_);
  absl::StatusOr<uint64_t> Pin(uint64_t version) ABSL_LOCKS_EXCLUDED(tick_mu_);
  absl::StatusOr<uint64_t> Rollback() ABSL_LOCKS_EXCLUDED(tick_mu_);

 private:
  ClusterModels(const ClusterOptions& options, bool trainer_enabled, storage::TelemetryStore* store,
                ModelManager* models, Metrics* metrics, std::unique_ptr<cluster::Coordination> coordination);
  void Loop() ABSL_LOCKS_EXCLUDED(stop_mu_);
  void Tick() ABSL_LOCKS_EXCLUDED(tick_mu_);
  void Lease() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tick_mu_);
  // Whether this replica serves what the pointer says after the call.
  bool Follow(const cluster::PointerValue& pointer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tick_mu_);
  void Lead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tick_mu_);
  // On the trainer: runs a forwarded call. The answer: a status code, a newline, then the payload or the message.
  std::string HandleControl(absl::string_view request);
  // Here if this replica is the trainer, else on the trainer; `payload` gets the answer's payload.
  absl::Status Call(absl::string_view request, std::string* payload);

  const ClusterOptions options_;
  const bool trainer_enabled_;
  const std::string id_;
  storage::TelemetryStore* const store_;  // not owned
  ModelManager* const models_;            // not owned
  const Metrics::ClusterSeries& series_;
  std::unique_ptr<cluster::Coordination> coordination_;
  const absl::Duration tick_;
  std::atomic<bool> trainer_{false};
  std::atomic<bool> cancel_{false};  // Stop: a forwarded call stops waiting for the trainer

  absl::Mutex tick_mu_;
  absl::Time lease_until_ ABSL_GUARDED_BY(tick_mu_) = absl::InfinitePast();
  std::string lease_holder_ ABSL_GUARDED_BY(tick_mu_);      // last holder seen, for the logs
  uint64_t synced_revision_ ABSL_GUARDED_BY(tick_mu_) = 0;  // the pointer revision this replica serves
  bool synced_ ABSL_GUARDED_BY(tick_mu_) = false;           // this tick's follow step succeeded
  ServingPointer pointer_ ABSL_GUARDED_BY(tick_mu_);        // as of synced_revision_
  absl::flat_hash_map<uint64_t, cluster::ModelRef> published_ ABSL_GUARDED_BY(tick_mu_);
  std::string last_error_ ABSL_GUARDED_BY(tick_mu_);  // logged once per distinct error

  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  int handling_ ABSL_GUARDED_BY(stop_mu_) = 0;  // forwarded calls running now
  std::thread thread_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_CLUSTER_MODELS_H_
