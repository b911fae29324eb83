// ServiceCore: the transport-independent heart of the service — store, catalogue, observed statistics, serving
// model and ingest queue — with one method per RPC. The gRPC layer (services.cc) only adapts calls to it.
//
// Thread safety: after Create returns, every RPC method (Select ... QuarantineNode, PrepareReport, Ingest) may be
// called from any number of RPC threads at once, and so may BeginWorker/EndWorker; Shutdown may be called at any
// time, more than once, and waits for the workers. ServiceCore holds no lock over a request: Select reads immutable
// snapshots (the catalogue's, the serving model), the descriptor tables (read-only after Init) and ObservedStats, which
// locks itself; writes go to components that serialise themselves (Catalog, ModelManager, IngestQueue, DecisionLog, the
// store). Its own state: quarantine_mu_ serialises QuarantineNode (read the list, persist it, apply it to the
// statistics) and guards quarantined_; workers_mu_ guards the worker count and the refusal flag that Shutdown sets.
// In cluster mode the cluster settings' watch thread applies the other replicas' catalogue and quarantine changes
// through the same Catalog and quarantine_mu_.
// Ownership: it owns the store, the catalogue, the statistics, the model manager and the ingest queue (the ingest
// writer thread calls back into OnStored); it borrows `metrics`, which must outlive it.
#ifndef ACCELSEL_SERVER_SERVICE_CORE_H_
#define ACCELSEL_SERVER_SERVICE_CORE_H_

#include <atomic>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "accelsel/v1/accelsel.pb.h"
#include "datasets/llm_inference_bench.h"
#include "model/observed_stats.h"
#include "model/predictor.h"
#include "model/selector.h"
#include "server/catalog.h"
#include "server/cluster_decisions.h"
#include "server/cluster_ingest.h"
#include "server/cluster_models.h"
#include "server/cluster_settings.h"
#include "server/decision_log.h"
#include "server/executor.h"
#include "server/ingest_queue.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/retention.h"
#include "server/snapshot.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

class ModelManager;

class ServiceCore {
 public:
  // Opens the store, loads the catalogue, rebuilds statistics from stored runs, seeds from options.seed_csv if the
  // store is empty, and loads the last promoted model.
  static absl::StatusOr<std::unique_ptr<ServiceCore>> Create(const ServerOptions& options, Metrics* metrics);
  ~ServiceCore();

  // `caller`: the node the decision is logged for (a node token's id, else the request's node_id; empty = anyone
  // may join it). The context's unset descriptors are filled by name first (server/descriptor_fill.h); the filled
  // context is what is ranked and logged, and response->filled_fields names what was filled.
  absl::Status Select(const v1::SelectAcceleratorRequest& request, v1::SelectAcceleratorResponse* response,
                      const std::string& caller);
  absl::Status Select(const v1::SelectAcceleratorRequest& request, v1::SelectAcceleratorResponse* response) {
    return Select(request, response, request.node_id());
  }
  // One page of the catalogue, ordered by id (a catalogue may outgrow a message; docs/API.md).
  absl::Status ListStrategies(const v1::ListStrategiesRequest& request, v1::ListStrategiesResponse* response);
  absl::Status RegisterStrategy(const v1::RegisterStrategyRequest& request, v1::RegisterStrategyResponse* response);
  // Operator only: hides a strategy from selection and listing (or restores it); its runs and models stay.
  absl::Status SetStrategyRetired(const std::string& id, bool retired, v1::Strategy* strategy, bool* changed);
  absl::Status GetModelInfo(v1::GetModelInfoResponse* response);
  absl::Status Retrain(v1::RetrainResponse* response);
  absl::Status PinModel(const v1::PinModelRequest& request, v1::PinModelResponse* response);
  absl::Status RollbackModel(v1::RollbackModelResponse* response);
  // Live quality over a recent window, from the decision log (operator only). In cluster mode the log holds every
  // replica's decisions (server/cluster_decisions.h), so any replica answers for the cluster.
  absl::Status GetLiveQuality(const v1::GetLiveQualityRequest& request, v1::GetLiveQualityResponse* response);
  // Operator only: an online copy of the whole store in a new folder under options.backup_dir.
  absl::Status Backup(const v1::BackupRequest& request, v1::BackupResponse* response);
  // Quarantines or releases a node (or only lists, with an empty node_id); persisted in the store's meta.
  // In cluster mode RegisterStrategy, SetStrategyRetired, QuarantineNode and a report's new strategy definition are
  // also published to every replica (server/cluster_settings.h) after the local change: UNAVAILABLE when that failed.
  absl::Status QuarantineNode(const v1::QuarantineNodeRequest& request, v1::QuarantineNodeResponse* response)
      ABSL_LOCKS_EXCLUDED(quarantine_mu_);

  // Validates a report and resolves its strategy (registering an attached definition when
  // `may_create_strategy`; otherwise the definition must already be in the catalogue). On error the status
  // message names the field and the rule. `reason` receives a low-cardinality label for metrics. A valid report's
  // context gets its unset descriptors filled by name, as in Select, before it is stored.
  absl::Status PrepareReport(v1::RunReport* report, std::string* reason, bool may_create_strategy = true);
  // Hands a prepared report to the group commit; `sink` gets it back with its result after the write returned.
  // In cluster mode it goes to the stream instead, and comes back once the stream acknowledged it. `spare`: a
  // ConvertedRun to reuse (or null); in single-process mode the report is converted into it here, on the caller's
  // thread, so that the group commit's one writer thread does not, and it comes back with the report.
  void Ingest(IngestSink* sink, std::unique_ptr<v1::RunReport> report, uint64_t sequence,
              std::unique_ptr<ConvertedRun> spare = nullptr);

  // Stops ingest (after finishing what was submitted) and the trainer, flushes the store. First waits for the
  // blocking admin workers (a Retrain whose call already ended DEADLINE_EXCEEDED still runs on the executor).
  void Shutdown() ABSL_LOCKS_EXCLUDED(workers_mu_);

  // Blocking admin calls run on the executor's admin workers and use this core, and ReportRun reactors use it until
  // their OnDone: each holds a worker slot until its last touch of the core, the metrics or the call, so Shutdown
  // (and the destruction that follows) waits for it. BeginWorker is false once shutdown began: the call is refused.
  bool BeginWorker() ABSL_LOCKS_EXCLUDED(workers_mu_);
  void EndWorker() ABSL_LOCKS_EXCLUDED(workers_mu_);

  const ServerOptions& options() const { return options_; }
  Metrics* metrics() { return metrics_; }
  storage::TelemetryStore* store() { return store_.get(); }
  // Null in single-process mode.
  ClusterIngest* cluster() { return cluster_.get(); }
  ClusterModels* cluster_models() { return cluster_models_.get(); }
  const DecisionLog* decision_log() const { return decision_log_.get(); }
  ClusterSettings* cluster_settings() { return cluster_settings_.get(); }
  model::ObservedStats& stats() { return stats_; }
  ModelManager& models() { return *models_; }
  DecisionLog& decisions() { return *decision_log_; }
  // The descriptor tables contexts are filled from; empty when options.descriptors_dir holds none.
  const datasets::DescriptorTables& descriptors() const { return descriptors_; }
  // Runs the blocking admin calls and the retrain phases (server/executor.h); shut down with the core.
  Executor& executor() { return *executor_; }

 private:
  ServiceCore(const ServerOptions& options, Metrics* metrics);
  absl::Status Init();
  absl::Status Seed();
  absl::Status LoadDescriptors();
  // `records`: each stored report's conversion, null where none was made.
  void OnStored(const std::vector<const v1::RunReport*>& stored, const std::vector<const model::RunRecord*>& records);
  // Hands the answer to the decision log (off the request path from here on).
  // `proto_context` is the context as ranked (filled by name), `context` its model form.
  void LogDecision(const v1::SelectAcceleratorRequest& request, const v1::SelectAcceleratorResponse& response,
                   const std::vector<model::Recommendation>& recs, const v1::TaskContext& proto_context,
                   const model::TaskContext& context, const std::string& caller, int64_t now_ms);

  ServerOptions options_;
  Metrics* const metrics_;  // not owned
  std::unique_ptr<storage::TelemetryStore> store_;
  std::unique_ptr<Catalog> catalog_;
  datasets::DescriptorTables descriptors_;  // set by Init, read-only afterwards
  model::ObservedStats stats_;
  model::Selector selector_;
  std::unique_ptr<Executor> executor_;  // before models_, which uses it until it is destroyed
  std::unique_ptr<ModelManager> models_;
  std::unique_ptr<IngestQueue> ingest_;
  // Cluster mode only (options.cluster.nats.servers): publishes reports and applies the stream (feeding OnStored).
  std::unique_ptr<ClusterIngest> cluster_;
  // Cluster mode only: the trainer lease and the serving pointer; stopped (in Shutdown) before models_.
  std::unique_ptr<ClusterModels> cluster_models_;
  // Cluster mode only: the catalogue and the quarantine list, replicated; its watch applies through the two
  // methods below (on its thread). Destroyed first of the cluster parts; it borrows the catalogue and the store.
  std::unique_ptr<ClusterSettings> cluster_settings_;
  void ApplyReplicatedStrategy(const v1::Strategy& strategy);
  // Publishes the catalogue's entry of `id` (definition and retired flag) to the other replicas.
  absl::Status PublishStrategyState(const std::string& id);
  void ApplyReplicatedQuarantine(const std::string& node_id, bool quarantined) ABSL_LOCKS_EXCLUDED(quarantine_mu_);
  std::unique_ptr<RunRetention> retention_;  // null without options.run_retention; stopped before the store closes
  // After ingest_ (which hands it outcomes) and models_ (which its hooks read): destroyed before both.
  std::unique_ptr<DecisionLog> decision_log_;
  // Cluster mode only: the decision stream. After decision_log_ (which it feeds and which hands it this replica's
  // decisions through decisions_out_): destroyed before it.
  std::unique_ptr<ClusterDecisions> cluster_decisions_;
  std::atomic<ClusterDecisions*> decisions_out_{nullptr};  // read on the decision log's writer thread
  std::atomic<bool> shut_down_{false};
  std::atomic<uint64_t> seeded_selects_{0};  // SelectAccelerator calls drawn from options_.seed
  // Applies `nodes` to the statistics (the trainer reads them there).
  void ApplyQuarantineLocked(const std::set<std::string>& nodes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(quarantine_mu_);
  // Persists `next` in the store's meta, makes it the list and applies it.
  absl::Status SetQuarantinedLocked(std::set<std::string> next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(quarantine_mu_);
  // Serialises QuarantineNode calls (read, change, persist, apply, and in cluster mode publish) and the replicated
  // changes the cluster settings apply.
  absl::Mutex quarantine_mu_;
  std::set<std::string> quarantined_ ABSL_GUARDED_BY(quarantine_mu_);
  absl::Mutex workers_mu_;
  int workers_ ABSL_GUARDED_BY(workers_mu_) = 0;
  bool refuse_workers_ ABSL_GUARDED_BY(workers_mu_) = false;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_SERVICE_CORE_H_
