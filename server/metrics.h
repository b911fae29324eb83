// Metrics: every Prometheus series the service exports, created once at start-up so the hot path only touches
// pre-resolved counters. Served over HTTP by prometheus-cpp's Exposer on --metrics_listen.
//
// Thread safety: after construction and Serve (once, at start-up, before any RPC), every method may be called from
// any thread at once: the pre-resolved counters, gauges and histograms are prometheus-cpp's own
// thread-safe series, reached through pointers that never change; the accessors hand out references to them. The
// two series created on demand are guarded by a lock each: rejected_mu_ the reason -> counter map, suspect_mu_ the
// per-node suspect counters (their count is capped). The gRPC method table is filled by AddGrpcService before any
// RPC and only read afterwards; a method's non-OK grpc_server_handled_total series are published through an atomic
// pointer each. Exposer threads read the registry concurrently (prometheus-cpp
// locks it). Ownership: the registry owns every series (the raw pointers here borrow from it); Metrics owns the
// registry and the Exposer; its owner (the server, or a test) must keep it alive until the last RPC finished.
#ifndef ACCELSEL_SERVER_METRICS_H_
#define ACCELSEL_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "model/types.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace google::protobuf {
class ServiceDescriptor;
}

namespace accelsel::server {

enum class Method {
  kSelectAccelerator,
  kReportRun,
  kListStrategies,
  kRegisterStrategy,
  kGetModelInfo,
  kRetrain,
  kPinModel,
  kRollbackModel,
  kRetireStrategy,
  kUnretireStrategy,
  kQuarantineNode,
  kGetLiveQuality,
  kBackup,
  kNull,
  kCount
};
const char* MethodName(Method m);

// One gRPC method's series in the grpc_server_* families, which carry go-grpc-prometheus' names and labels so that
// the usual gRPC dashboards and alerts work unchanged. Resolved once per call (Metrics::GrpcMethod), so recording
// touches no map. `handled` holds grpc_server_handled_total by status code: the OK series exists from the start,
// the others are created on their first use (codes are an enum: the label set stays bounded).
struct GrpcMethodSeries {
  prometheus::Labels labels;  // grpc_type, grpc_service, grpc_method
  prometheus::Counter* started = nullptr;
  prometheus::Counter* msg_received = nullptr;
  prometheus::Counter* msg_sent = nullptr;
  prometheus::Histogram* handling_seconds = nullptr;
  std::array<std::atomic<prometheus::Counter*>, 17> handled{};  // by grpc::StatusCode 0..16
};

class Metrics {
 public:
  // Label values of accelsel_runs_rejected_total: the top-level RunReport field a rule is about, "storage" for
  // write failures, "other" for anything else. Created at start-up so every series exists from the first scrape.
  static constexpr const char* kRejectReasons[] = {
      "report",      "run_id", "node_id", "time_unix_ms",   "context", "strategy", "strategy_id",
      "decision_id", "status", "metrics", "schema_version", "storage", "other"};

  Metrics();

  // The HTTP endpoint's worker threads and read timeout. Each open connection holds a worker until its request
  // arrives or the timeout passes, so `threads` idle or slow connections at once delay scrapes by at most
  // `request_timeout` (docs/OPERATIONS.md, "Limits").
  struct HttpOptions {
    int threads = 16;                                   // a thread costs a mostly unused stack
    absl::Duration request_timeout = absl::Seconds(5);  // well under Prometheus' default 10 s scrape timeout
  };
  // Starts the HTTP endpoint ("host:port"; port 0 = any free port). Returns the bound port.
  absl::StatusOr<int> Serve(const std::string& listen_address, const HttpOptions& http);  // once, at start-up
  absl::StatusOr<int> Serve(const std::string& listen_address) { return Serve(listen_address, HttpOptions()); }

  // accelsel_rpc_requests_total, and for unary methods accelsel_rpc_latency_seconds. A ReportRun stream is counted
  // but its lifetime is not a latency: it would swamp the histogram's +Inf bucket (grpc_server_handling_seconds,
  // grpc_type="bidi_stream", holds stream lifetimes).
  void RecordRpc(Method method, grpc::StatusCode code, absl::Duration latency);

  // grpc_server_* series for every method of `service`, present from the first scrape. Like Serve: at start-up,
  // before any RPC. The constructor adds the "unknown" method only.
  void AddGrpcService(const google::protobuf::ServiceDescriptor& service);
  // The series of "/package.Service/Method". A method no added service has (a client may send any path) gets the
  // one set labelled "unknown", so that peers cannot create label values.
  GrpcMethodSeries* GrpcMethod(absl::string_view path) const;
  // The call ended with `code` after `seconds` (streams: the stream's lifetime).
  void GrpcHandled(GrpcMethodSeries* method, grpc::StatusCode code, double seconds);
  void RecordSelection(model::EvidenceLayer top_layer, bool explored);
  void RunsIngested(double n) { runs_ingested_->Increment(n); }
  // Cluster mode's series (docs/SCALE.md, "Cluster mode: reports"). Created by EnableCluster at start-up, in
  // cluster mode only, so that a single-process server's scrape stays as it was; the pointers live as long as this.
  struct ClusterSeries {
    prometheus::Counter* published = nullptr;         // reports the stream acknowledged
    prometheus::Counter* publish_failures = nullptr;  // reports answered UNAVAILABLE: not acknowledged by the stream
    prometheus::Counter* applied = nullptr;           // stream messages applied to this replica's store
    prometheus::Gauge* apply_lag = nullptr;           // stream messages after the last applied one
    prometheus::Gauge* applied_sequence = nullptr;    // stream sequence of the last applied message
    prometheus::Counter* redeliveries = nullptr;      // deliveries started over after a message they dropped
    prometheus::Counter* skipped = nullptr;           // stream messages retention removed before they were applied
    prometheus::Gauge* trainer = nullptr;             // 1 while this replica holds the trainer lease
    prometheus::Counter* models_published = nullptr;  // serving-pointer moves this replica (as trainer) made
    prometheus::Counter* models_installed = nullptr;  // versions another replica published, now serving here
    prometheus::Counter* model_install_failures = nullptr;   // pointer moves this replica could not follow (yet)
    prometheus::Counter* decisions_published = nullptr;      // own decisions the decision stream acknowledged
    prometheus::Counter* decisions_not_published = nullptr;  // own decisions dropped (queue full, NATS away)
    prometheus::Counter* decisions_applied = nullptr;        // other replicas' decisions added to this log
    prometheus::Counter* decision_redeliveries = nullptr;    // decision-stream deliveries started over
  };
  const ClusterSeries& EnableCluster();
  void RunsDuplicate(double n) { runs_duplicate_->Increment(n); }
  void RunRejected(const std::string& reason)  // reason: one of kRejectReasons (else counted as "other")
      ABSL_LOCKS_EXCLUDED(rejected_mu_);
  // A report or strategy definition carried fields this server does not know; they were dropped before storing.
  void UnknownFieldsDropped() { unknown_fields_dropped_->Increment(); }
  // A stored report flagged by ObservedStats as far from the other nodes (accelsel_suspect_node_reports_total).
  static constexpr size_t kMaxSuspectNodes = 20;
  void SuspectReport(const std::string& node_id) ABSL_LOCKS_EXCLUDED(suspect_mu_);

  prometheus::Gauge& runs_stored() { return *runs_stored_; }
  prometheus::Gauge& storage_bytes() { return *storage_bytes_; }
  prometheus::Gauge& strategies() { return *strategies_; }
  prometheus::Gauge& model_version() { return *model_version_; }
  prometheus::Gauge& model_age_seconds() { return *model_age_seconds_; }
  prometheus::Gauge& model_training_rows() { return *model_training_rows_; }
  prometheus::Gauge& model_training_seconds() { return *model_training_seconds_; }
  prometheus::Gauge& model_holdout_mape() { return *model_holdout_mape_; }
  prometheus::Gauge& model_holdout_top1() { return *model_holdout_top1_; }
  prometheus::Gauge& model_holdout_coverage() { return *model_holdout_coverage_; }
  prometheus::Gauge& exploration_rate() { return *exploration_rate_; }
  prometheus::Counter& model_promotions() { return *model_promotions_; }
  prometheus::Counter& model_rejections() { return *model_rejections_; }
  prometheus::Counter& retrain_failures() { return *retrain_failures_; }
  prometheus::Counter& runs_expired() { return *runs_expired_; }

  // Decision log (server/decision_log.h). The per-version live-quality series are created by the log itself.
  prometheus::Counter& decisions_logged() { return *decisions_logged_; }
  prometheus::Gauge& decision_log_bytes() { return *decision_log_bytes_; }
  void DecisionLogDropped(bool decision, double n = 1) {
    (decision ? dropped_decisions_ : dropped_outcomes_)->Increment(n);
  }
  void DecisionLogWriteFailed(size_t records) { decision_log_write_failures_->Increment(static_cast<double>(records)); }
  void DecisionsPruned(uint64_t by_age, uint64_t by_bytes) {
    pruned_age_->Increment(static_cast<double>(by_age));
    pruned_bytes_->Increment(static_cast<double>(by_bytes));
  }
  // `result`: the index of a server::JoinResult (joined, unknown, expired, foreign, repeat).
  static constexpr const char* kJoinResults[] = {"joined", "unknown", "expired", "foreign", "repeat"};
  void DecisionJoin(int result) { joins_[result]->Increment(); }

  // Reloads of the --auth_tokens file (what "tokens") and checks of changed TLS files (what "tls"), by result.
  void ConfigReload(bool tls, bool ok) { reloads_[tls ? 1 : 0][ok ? 0 : 1]->Increment(); }

  prometheus::Registry& registry() { return *registry_; }

 private:
  static constexpr int kCodes = 17;  // grpc::StatusCode 0..16
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::array<std::array<prometheus::Counter*, kCodes>, static_cast<int>(Method::kCount)> requests_{};
  std::array<prometheus::Histogram*, static_cast<int>(Method::kCount)> latency_{};  // null for ReportRun
  // `expected`: the code whose grpc_server_handled_total series is created now (OK; UNIMPLEMENTED for "unknown").
  GrpcMethodSeries* NewGrpcMethod(const std::string& type, const std::string& service, const std::string& method,
                                  grpc::StatusCode expected);
  prometheus::Counter* Handled(GrpcMethodSeries* method, int code);
  prometheus::Family<prometheus::Counter>* grpc_started_;
  prometheus::Family<prometheus::Counter>* grpc_handled_;
  prometheus::Family<prometheus::Counter>* grpc_msg_received_;
  prometheus::Family<prometheus::Counter>* grpc_msg_sent_;
  prometheus::Family<prometheus::Histogram>* grpc_handling_seconds_;
  std::vector<std::unique_ptr<GrpcMethodSeries>> grpc_methods_;       // owns every method's series (fixed addresses)
  absl::flat_hash_map<std::string, GrpcMethodSeries*> grpc_by_path_;  // filled at start-up, then read-only
  GrpcMethodSeries* grpc_unknown_ = nullptr;
  std::array<prometheus::Counter*, 5> selections_by_layer_{};
  prometheus::Counter* selections_explored_;
  prometheus::Counter* runs_ingested_;
  ClusterSeries cluster_;
  prometheus::Counter* runs_expired_;
  prometheus::Counter* runs_duplicate_;
  prometheus::Counter* unknown_fields_dropped_;
  prometheus::Family<prometheus::Counter>* runs_rejected_family_;
  absl::Mutex rejected_mu_;
  absl::flat_hash_map<std::string, prometheus::Counter*> runs_rejected_ ABSL_GUARDED_BY(rejected_mu_);
  prometheus::Family<prometheus::Counter>* suspect_family_;
  absl::Mutex suspect_mu_;
  absl::flat_hash_map<std::string, prometheus::Counter*> suspects_ ABSL_GUARDED_BY(suspect_mu_);
  prometheus::Counter* suspect_other_ ABSL_GUARDED_BY(suspect_mu_) = nullptr;
  prometheus::Gauge* runs_stored_;
  prometheus::Gauge* storage_bytes_;
  prometheus::Gauge* strategies_;
  prometheus::Gauge* model_version_;
  prometheus::Gauge* model_age_seconds_;
  prometheus::Gauge* model_training_rows_;
  prometheus::Gauge* model_training_seconds_;
  prometheus::Gauge* model_holdout_mape_;
  prometheus::Gauge* model_holdout_top1_;
  prometheus::Gauge* model_holdout_coverage_;
  prometheus::Gauge* exploration_rate_;
  prometheus::Counter* model_promotions_;
  prometheus::Counter* model_rejections_;
  prometheus::Counter* retrain_failures_;
  prometheus::Counter* decisions_logged_;
  prometheus::Gauge* decision_log_bytes_;
  prometheus::Counter* dropped_decisions_;
  prometheus::Counter* dropped_outcomes_;
  prometheus::Counter* decision_log_write_failures_;
  prometheus::Counter* pruned_age_;
  prometheus::Counter* pruned_bytes_;
  std::array<prometheus::Counter*, 5> joins_{};
  std::array<std::array<prometheus::Counter*, 2>, 2> reloads_{};  // [tokens, tls][ok, error]
};

// Measures one RPC from construction to Finish() and records it once.
class RpcTimer {
 public:
  RpcTimer(Metrics* metrics, Method method) : metrics_(metrics), method_(method), start_(absl::Now()) {}
  void Finish(grpc::StatusCode code) { metrics_->RecordRpc(method_, code, absl::Now() - start_); }

 private:
  Metrics* metrics_;
  Method method_;
  absl::Time start_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_METRICS_H_
