// Metrics: every Prometheus series the service exports, created once at start-up so the hot path only touches
// pre-resolved counters. Served over HTTP by prometheus-cpp's Exposer on --metrics_listen.
#ifndef ACCELSEL_SERVER_METRICS_H_
#define ACCELSEL_SERVER_METRICS_H_

#include <array>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
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
  kNull,
  kCount
};
const char* MethodName(Method m);

class Metrics {
 public:
  Metrics();

  // Starts the HTTP endpoint ("host:port"; port 0 = any free port). Returns the bound port.
  absl::StatusOr<int> Serve(const std::string& listen_address);

  void RecordRpc(Method method, grpc::StatusCode code, absl::Duration latency);
  void RecordSelection(model::EvidenceLayer top_layer, bool explored);
  void RunsIngested(double n) { runs_ingested_->Increment(n); }
  void RunsDuplicate(double n) { runs_duplicate_->Increment(n); }
  void RunRejected(const std::string& reason);  // reason: the field the rule is about, a low-cardinality label

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

  prometheus::Registry& registry() { return *registry_; }

 private:
  static constexpr int kCodes = 17;  // grpc::StatusCode 0..16
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::array<std::array<prometheus::Counter*, kCodes>, static_cast<int>(Method::kCount)> requests_{};
  std::array<prometheus::Histogram*, static_cast<int>(Method::kCount)> latency_{};
  std::array<prometheus::Counter*, 5> selections_by_layer_{};
  prometheus::Counter* selections_explored_;
  prometheus::Counter* runs_ingested_;
  prometheus::Counter* runs_duplicate_;
  prometheus::Family<prometheus::Counter>* runs_rejected_family_;
  absl::Mutex rejected_mu_;
  absl::flat_hash_map<std::string, prometheus::Counter*> runs_rejected_ ABSL_GUARDED_BY(rejected_mu_);
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
