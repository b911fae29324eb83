// Metric families and their help texts. Label values are bounded: methods and codes are enums, rejection
// reasons are field names (validation messages are "field: rule"), evidence layers are an enum, gRPC methods are
// those of the services added at start-up (any other path counts as "unknown").
#include "server/metrics.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "util/version.h"

namespace accelsel::server {
namespace {

const char* CodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  return kNames[code];
}

const char* LayerName(int layer) {
  static constexpr const char* kNames[] = {"none", "observed", "model", "prior", "unknown"};
  return kNames[layer];
}

// Exponential buckets from 50 us to ~3.3 s: covers a cache hit up to a slow cold call.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 50e-6; v < 4.0; v *= 2) b.push_back(v);
  return b;
}

// grpc_server_handling_seconds: the calls' buckets, then 10 s to 1 h for the lifetimes of streams (ReportRun,
// health Watch), which the gRPC convention puts in the same histogram under their own grpc_type.
prometheus::Histogram::BucketBoundaries HandlingBuckets() {
  prometheus::Histogram::BucketBoundaries b = LatencyBuckets();
  b.insert(b.end(), {10, 60, 600, 3600});
  return b;
}

// go-grpc-prometheus' grpc_type values.
const char* GrpcType(const google::protobuf::MethodDescriptor& m) {
  if (m.client_streaming()) return m.server_streaming() ? "bidi_stream" : "client_stream";
  return m.server_streaming() ? "server_stream" : "unary";
}

}  // namespace

const char* MethodName(Method m) {
  switch (m) {
    case Method::kSelectAccelerator: return "SelectAccelerator";
    case Method::kReportRun: return "ReportRun";
    case Method::kListStrategies: return "ListStrategies";
    case Method::kRegisterStrategy: return "RegisterStrategy";
    case Method::kGetModelInfo: return "GetModelInfo";
    case Method::kRetrain: return "Retrain";
    case Method::kPinModel: return "PinModel";
    case Method::kRollbackModel: return "RollbackModel";
    case Method::kRetireStrategy: return "RetireStrategy";
    case Method::kUnretireStrategy: return "UnretireStrategy";
    case Method::kQuarantineNode: return "QuarantineNode";
    case Method::kGetLiveQuality: return "GetLiveQuality";
    case Method::kBackup: return "Backup";
    case Method::kNull: return "Null";
    case Method::kCount: break;
  }
  return "unknown";
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& requests = BuildCounter()
                       .Name("accelsel_rpc_requests_total")
                       .Help("gRPC calls finished, by method and status code.")
                       .Register(*registry_);
  auto& latency = BuildHistogram()
                      .Name("accelsel_rpc_latency_seconds")
                      .Help(
                          "Server-side latency of unary gRPC calls, by method (ReportRun streams are not in it: "
                          "their lifetimes are in grpc_server_handling_seconds).")
                      .Register(*registry_);
  const auto buckets = LatencyBuckets();
  for (int m = 0; m < static_cast<int>(Method::kCount); ++m) {
    const std::string name = MethodName(static_cast<Method>(m));
    if (static_cast<Method>(m) != Method::kReportRun) latency_[m] = &latency.Add({{"method", name}}, buckets);
    for (int c = 0; c < kCodes; ++c) requests_[m][c] = &requests.Add({{"method", name}, {"code", CodeName(c)}});
  }
  // go-grpc-prometheus' names and help texts.
  auto counters = [this](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(*registry_);
  };
  grpc_started_ = counters("grpc_server_started_total", "Total number of RPCs started on the server.");
  grpc_handled_ = counters("grpc_server_handled_total",
                           "Total number of RPCs completed on the server, regardless of success or failure.");
  grpc_msg_received_ =
      counters("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.");
  grpc_msg_sent_ = counters("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.");
  grpc_handling_seconds_ = &BuildHistogram()
                                .Name("grpc_server_handling_seconds")
                                .Help(
                                    "Histogram of response latency (seconds) of gRPC that had been application-level "
                                    "handled by the server (streams: their lifetime).")
                                .Register(*registry_);
  grpc_unknown_ = NewGrpcMethod("unknown", "unknown", "unknown", grpc::StatusCode::UNIMPLEMENTED);
  auto& selections = BuildCounter()
                         .Name("accelsel_selections_total")
                         .Help("SelectAccelerator answers, by evidence layer of the first recommendation.")
                         .Register(*registry_);
  for (int l = 1; l <= 4; ++l) selections_by_layer_[l] = &selections.Add({{"layer", LayerName(l)}});
  selections_explored_ = &BuildCounter()
                              .Name("accelsel_selections_explored_total")
                              .Help("SelectAccelerator answers whose first recommendation was chosen by exploration.")
                              .Register(*registry_)
                              .Add({});
  runs_ingested_ = &BuildCounter()
                        .Name("accelsel_runs_ingested_total")
                        .Help("Run reports written durably and acknowledged.")
                        .Register(*registry_)
                        .Add({});
  runs_duplicate_ = &BuildCounter()
                         .Name("accelsel_runs_duplicate_total")
                         .Help("Run reports whose run_id was already stored (acknowledged as duplicate).")
                         .Register(*registry_)
                         .Add({});
  unknown_fields_dropped_ = &BuildCounter()
                                 .Name("accelsel_unknown_fields_dropped_total")
                                 .Help(
                                     "Run reports and strategy definitions that carried fields this server does "
                                     "not know; the fields were dropped before storing.")
                                 .Register(*registry_)
                                 .Add({});
  runs_rejected_family_ = &BuildCounter()
                               .Name("accelsel_runs_rejected_total")
                               .Help("Run reports rejected, by reason (the field that broke a rule).")
                               .Register(*registry_);
  {
    absl::MutexLock lock(&rejected_mu_);
    for (const char* reason : kRejectReasons)
      runs_rejected_[reason] = &runs_rejected_family_->Add({{"reason", reason}});
  }
  suspect_family_ = &BuildCounter()
                         .Name("accelsel_suspect_node_reports_total")
                         .Help(
                             "OK run reports whose node's latencies sit far from the other nodes' in the same "
                             "(context, strategy); the first kMaxSuspectNodes nodes flagged get their own "
                             "series, later ones count under node=\"other\".")
                         .Register(*registry_);
  {
    absl::MutexLock lock(&suspect_mu_);
    suspect_other_ = &suspect_family_->Add({{"node", "other"}});
  }
  auto gauge = [this](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  auto counter = [this](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(*registry_).Add({});
  };
  runs_stored_ = gauge("accelsel_runs_stored", "Run reports in the store.");
  storage_bytes_ = gauge("accelsel_storage_bytes", "Approximate bytes of the RocksDB store on disk.");
  strategies_ = gauge("accelsel_strategies", "Strategies in the catalogue.");
  model_version_ = gauge("accelsel_model_version", "Serving meta-model version (0 = statistics only).");
  model_age_seconds_ = gauge("accelsel_model_age_seconds", "Seconds since the serving model was trained.");
  model_training_rows_ = gauge("accelsel_model_training_rows", "Rows the serving model was trained on.");
  model_training_seconds_ = gauge("accelsel_model_training_seconds", "Wall time of the last training run.");
  model_holdout_mape_ = gauge("accelsel_model_holdout_mape", "Held-out MAPE of the serving model.");
  model_holdout_top1_ = gauge("accelsel_model_holdout_top1", "Held-out top-1 agreement of the serving model.");
  model_holdout_coverage_ =
      gauge("accelsel_model_holdout_coverage80", "Held-out coverage of the serving model's 80% interval.");
  exploration_rate_ = gauge("accelsel_exploration_rate", "Configured exploration rate.");
  model_promotions_ = counter("accelsel_model_promotions_total", "Trained candidates promoted to serving.");
  model_rejections_ = counter("accelsel_model_rejections_total", "Trained candidates not promoted.");
  retrain_failures_ = counter("accelsel_model_retrain_failures_total", "Training runs that failed.");
  runs_expired_ = counter("accelsel_runs_expired_total", "Stored runs deleted by --run_retention (older than it).");
  decisions_logged_ = counter("accelsel_decisions_logged_total",
                              "Decision-log records written (a decision, and again when a run joins it).");
  decision_log_bytes_ = gauge("accelsel_decision_log_bytes", "Bytes of the decision log's records (keys + values).");
  decision_log_write_failures_ =
      counter("accelsel_decision_log_write_failures_total", "Decision-log records a store write failed to keep.");
  auto& dropped = BuildCounter()
                      .Name("accelsel_decision_log_dropped_total")
                      .Help("Decisions and report joins dropped because the decision log's queue was full, by kind.")
                      .Register(*registry_);
  dropped_decisions_ = &dropped.Add({{"kind", "decision"}});
  dropped_outcomes_ = &dropped.Add({{"kind", "outcome"}});
  auto& pruned = BuildCounter()
                     .Name("accelsel_decision_log_pruned_total")
                     .Help("Decisions deleted by retention, by the bound that deleted them (age or bytes).")
                     .Register(*registry_);
  pruned_age_ = &pruned.Add({{"reason", "age"}});
  pruned_bytes_ = &pruned.Add({{"reason", "bytes"}});
  auto& joins = BuildCounter()
                    .Name("accelsel_decision_joins_total")
                    .Help(
                        "Stored runs that carried a decision_id, by how it joined: joined, unknown, expired, "
                        "foreign (made for another node) or repeat (already joined).")
                    .Register(*registry_);
  for (size_t i = 0; i < joins_.size(); ++i) joins_[i] = &joins.Add({{"result", kJoinResults[i]}});
  auto& reloads = BuildCounter()
                      .Name("accelsel_config_reloads_total")
                      .Help(
                          "Reloads without a restart, by what (tokens: the --auth_tokens file; tls: changed "
                          "--tls_* files) and result (ok, or error: the previous ones stay in force).")
                      .Register(*registry_);
  for (int what = 0; what < 2; ++what) {
    for (int result = 0; result < 2; ++result) {
      reloads_[what][result] =
          &reloads.Add({{"what", what == 0 ? "tokens" : "tls"}, {"result", result == 0 ? "ok" : "error"}});
    }
  }
  // Prometheus' build_info convention: a constant 1 whose labels say which build runs, for joins and alerts.
  BuildGauge()
      .Name("accelsel_build_info")
      .Help("Always 1; the labels name the running build: its version and the git commit it was built from.")
      .Register(*registry_)
      .Add({{"version", std::string(util::Version())}, {"revision", std::string(util::Revision())}})
      .Set(1);
}

absl::StatusOr<int> Metrics::Serve(const std::string& listen_address, const HttpOptions& http) {
  try {
    // civetweb's options: its default read timeout is 30 s, so with few threads a handful of idle connections
    // would hold off every scrape for that long.
    exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", listen_address, "num_threads", std::to_string(std::max(1, http.threads)),
        "request_timeout_ms", std::to_string(std::max<int64_t>(1, absl::ToInt64Milliseconds(http.request_timeout)))});
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics endpoint ", listen_address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  const auto ports = exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError(absl::StrCat("metrics endpoint ", listen_address, ": not bound"));
  return ports.front();
}

void Metrics::RecordRpc(Method method, grpc::StatusCode code, absl::Duration latency) {
  const int m = static_cast<int>(method);
  const int c = static_cast<int>(code);
  if (c >= 0 && c < kCodes) requests_[m][c]->Increment();
  if (latency_[m] != nullptr) latency_[m]->Observe(absl::ToDoubleSeconds(latency));
}

GrpcMethodSeries* Metrics::NewGrpcMethod(const std::string& type, const std::string& service, const std::string& method,
                                         grpc::StatusCode expected) {
  auto series = std::make_unique<GrpcMethodSeries>();
  series->labels = {{"grpc_type", type}, {"grpc_service", service}, {"grpc_method", method}};
  series->started = &grpc_started_->Add(series->labels);
  series->msg_received = &grpc_msg_received_->Add(series->labels);
  series->msg_sent = &grpc_msg_sent_->Add(series->labels);
  series->handling_seconds = &grpc_handling_seconds_->Add(series->labels, HandlingBuckets());
  Handled(series.get(), static_cast<int>(expected));  // so that rate() has a series from the first scrape
  grpc_methods_.push_back(std::move(series));
  return grpc_methods_.back().get();
}

void Metrics::AddGrpcService(const google::protobuf::ServiceDescriptor& service) {
  for (int i = 0; i < service.method_count(); ++i) {
    const google::protobuf::MethodDescriptor& m = *service.method(i);
    const std::string path = absl::StrCat("/", service.full_name(), "/", m.name());
    if (grpc_by_path_.contains(path)) continue;
    grpc_by_path_[path] = NewGrpcMethod(GrpcType(m), service.full_name(), m.name(), grpc::StatusCode::OK);
  }
}

GrpcMethodSeries* Metrics::GrpcMethod(absl::string_view path) const {
  auto it = grpc_by_path_.find(path);
  return it == grpc_by_path_.end() ? grpc_unknown_ : it->second;
}

prometheus::Counter* Metrics::Handled(GrpcMethodSeries* method, int code) {
  prometheus::Counter* counter = method->handled[code].load(std::memory_order_acquire);
  if (counter == nullptr) {
    prometheus::Labels labels = method->labels;
    labels.emplace("grpc_code", CodeName(code));
    // Threads that race here get the same series: Family::Add returns the one it has for equal labels.
    counter = &grpc_handled_->Add(labels);
    method->handled[code].store(counter, std::memory_order_release);
  }
  return counter;
}

void Metrics::GrpcHandled(GrpcMethodSeries* method, grpc::StatusCode code, double seconds) {
  int c = static_cast<int>(code);
  if (c < 0 || c >= kCodes) c = static_cast<int>(grpc::StatusCode::UNKNOWN);  // not a code gRPC defines
  Handled(method, c)->Increment();
  method->handling_seconds->Observe(seconds);
}

void Metrics::RecordSelection(model::EvidenceLayer top_layer, bool explored) {
  const int l = static_cast<int>(top_layer);
  if (l >= 1 && l <= 4) selections_by_layer_[l]->Increment();
  if (explored) selections_explored_->Increment();
}

void Metrics::SuspectReport(const std::string& node_id) {
  absl::MutexLock lock(&suspect_mu_);
  auto it = suspects_.find(node_id);
  if (it == suspects_.end()) {
    if (suspects_.size() >= kMaxSuspectNodes || node_id == "other") {
      suspect_other_->Increment();
      return;
    }
    it = suspects_.emplace(node_id, &suspect_family_->Add({{"node", node_id}})).first;
  }
  it->second->Increment();
}

const Metrics::ClusterSeries& Metrics::EnableCluster() {
  if (cluster_.published != nullptr) return cluster_;
  auto counter = [this](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add({});
  };
  auto gauge = [this](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  cluster_.published = counter("accelsel_cluster_published_total",
                               "Run reports the NATS JetStream stream acknowledged (acknowledged to the node then).");
  cluster_.publish_failures = counter(
      "accelsel_cluster_publish_failures_total",
      "Run reports the stream did not acknowledge (NATS down, timeout): answered UNAVAILABLE for the node to resend.");
  cluster_.applied = counter("accelsel_cluster_applied_total",
                             "Stream messages this replica applied to its store (duplicates included).");
  cluster_.apply_lag = gauge("accelsel_cluster_apply_lag",
                             "Stream messages after the last one this replica applied, when that one was delivered.");
  cluster_.applied_sequence =
      gauge("accelsel_cluster_applied_sequence", "Stream sequence of the last message this replica applied.");
  cluster_.redeliveries = counter("accelsel_cluster_redeliveries_total",
                                  "Times this replica's delivery of the stream dropped messages (client buffer full "
                                  "while applying a backlog) and was started again after the last applied one.");
  cluster_.skipped = counter("accelsel_cluster_lost_to_retention_total",
                             "Stream messages the stream's retention removed before this replica applied them; "
                             "above 0, this replica lacks runs the others hold (docs/SCALE.md, Retention).");
  cluster_.trainer = gauge("accelsel_cluster_trainer", "1 while this replica holds the trainer lease, else 0.");
  cluster_.models_published = counter("accelsel_cluster_models_published_total",
                                      "Serving versions this replica published to the others as the trainer.");
  cluster_.models_installed = counter("accelsel_cluster_models_installed_total",
                                      "Serving versions (or pins) another replica published that now serve here.");
  cluster_.model_install_failures =
      counter("accelsel_cluster_model_install_failures_total",
              "Attempts to follow the serving pointer that failed (NATS away, a chunk missing, a blob that does not "
              "load); retried every tick.");
  cluster_.decisions_published = counter("accelsel_cluster_decisions_published_total",
                                         "Decisions of this replica the decision stream acknowledged.");
  cluster_.decisions_not_published =
      counter("accelsel_cluster_decisions_not_published_total",
              "Decisions of this replica not published (queue full, NATS away): the other replicas count their "
              "reports as unknown joins.");
  cluster_.decisions_applied = counter("accelsel_cluster_decisions_applied_total",
                                       "Decisions of other replicas taken from the decision stream into this log.");
  cluster_.decision_redeliveries =
      counter("accelsel_cluster_decision_redeliveries_total",
              "Times this replica's delivery of the decision stream dropped messages or stalled and was started again "
              "after the last decision it took.");
  return cluster_;
}

void Metrics::RunRejected(const std::string& reason) {
  absl::MutexLock lock(&rejected_mu_);
  auto it = runs_rejected_.find(reason);
  if (it == runs_rejected_.end()) {
    it = runs_rejected_.find("other");  // anything outside the fixed set; keeps the label set bounded
  }
  it->second->Increment();
}

}  // namespace accelsel::server
