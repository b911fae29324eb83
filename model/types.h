// Plain C++ records the meta-learning core works on. No gRPC, no RocksDB, no protobuf:
// the server converts its messages to these (proto/convert.h), the offline evaluator builds them from files.
#ifndef ACCELSEL_MODEL_TYPES_H_
#define ACCELSEL_MODEL_TYPES_H_

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace accelsel::model {

inline constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
inline bool IsMissing(double v) { return std::isnan(v); }

struct ModelDescriptor {
  std::string name;
  std::string family;
  double parameters_b = 0;
  uint32_t layers = 0;
  uint32_t hidden_size = 0;
  uint32_t attention_heads = 0;
  uint32_t kv_heads = 0;
  uint32_t experts = 0;
  uint32_t active_experts = 0;
  std::string weight_dtype;
};

struct HardwareDescriptor {
  std::string accelerator;
  uint32_t count = 0;
  double memory_gb = 0;
  double memory_bandwidth_gbps = 0;
  double peak_tflops = 0;
  std::string interconnect;
  double price_per_hour = 0;
};

struct WorkloadDescriptor {
  uint32_t prompt_tokens = 0;
  uint32_t output_tokens = 0;
  uint32_t batch_size = 0;
  double request_rate_per_s = 0;
  double shared_prefix_ratio = 0;
  std::string dataset;
};

struct TaskContext {
  ModelDescriptor model;
  HardwareDescriptor hardware;
  WorkloadDescriptor workload;
  std::vector<float> embedding;
  std::map<std::string, double> extra;
};

// A strategy is an id plus its components, e.g. {"engine","vllm"}, {"tp","2"}.
struct Strategy {
  std::string id;
  std::vector<std::pair<std::string, std::string>> components;
  std::string description;
  // True when some component can change the model's outputs (v1::StrategyComponent.lossy). Ranking needs only the
  // whole strategy's flag; the wire keeps it per component.
  bool lossy = false;
};

enum class RunStatus { kOk = 1, kOom = 2, kTimeout = 3, kCrash = 4, kNotApplicable = 5 };
inline bool IsFailure(RunStatus s) { return s != RunStatus::kOk; }

// kMissing where not measured.
struct RunMetrics {
  double ttft_ms = kMissing;
  double tpot_ms = kMissing;
  double e2e_latency_ms = kMissing;
  double throughput_tokens_per_s = kMissing;
  double peak_memory_gb = kMissing;
};

struct RunRecord {
  std::string run_id;
  std::string node_id;
  int64_t time_unix_ms = 0;
  TaskContext context;
  std::string strategy_id;
  std::string decision_id;
  RunStatus status = RunStatus::kOk;
  RunMetrics metrics;
};

enum class Objective { kE2eLatency = 1, kTtft = 2, kTpot = 3, kThroughput = 4, kCost = 5 };
inline bool IsMaximized(Objective o) { return o == Objective::kThroughput; }

enum class EvidenceLayer { kObserved = 1, kModel = 2, kPrior = 3, kUnknown = 4 };

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_TYPES_H_
