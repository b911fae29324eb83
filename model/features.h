// Feature encoding for the meta-model: a TaskContext and a Strategy become fixed-width float vectors (NaN =
// missing), so XGBoost and the nearest-neighbour selector see the same numbers in the trainer, the server and the
// offline evaluator.
#ifndef ACCELSEL_MODEL_FEATURES_H_
#define ACCELSEL_MODEL_FEATURES_H_

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "model/types.h"
#include "util/csv.h"
#include "util/hash.h"

namespace accelsel::model {

using util::ParseNumber;
using util::StableHash;

// Bytes per weight for a dtype name ("fp16", "bf16", "fp8", "int4", "awq" ...); 2 when unknown.
double BytesPerParameter(std::string_view dtype);

// Components of a strategy: its own components if any, else parsed from the id ("vllm", "engine=vllm,tp=2",
// "vllm+tp2"). The id itself is always one more component ("id", id) so identical ids match exactly.
std::vector<std::pair<std::string, std::string>> StrategyComponents(const Strategy& s);
std::vector<std::pair<std::string, std::string>> ComponentsFromId(std::string_view id);

// Widths of the context / strategy encodings. Changing any of them changes kFeatureSchemaVersion.
struct FeatureLayout {
  static constexpr int kNameBuckets = 16;       // tokens of the model name and of the accelerator name
  static constexpr int kSmallBuckets = 8;       // family, dtype, interconnect, dataset
  static constexpr int kEmbeddingWidth = 16;    // caller's embedding, truncated or NaN-padded
  static constexpr int kExtraBuckets = 8;       // hashed extra map
  static constexpr int kComponentBuckets = 32;  // multi-hot of "method=value"
  static constexpr int kParamBuckets = 8;       // log2 of numeric parameter values, by hashed key
};
inline constexpr uint32_t kFeatureSchemaVersion = 1;

// Names of the numeric context features, in order (for diagnostics and docs).
const std::vector<std::string>& ContextNumericFeatureNames();

size_t ContextFeatureWidth();
size_t StrategyFeatureWidth();
// Appends ContextFeatureWidth() floats.
void EncodeContext(const TaskContext& c, std::vector<float>* out);

// The name tokens and categorical values a model was trained on, as "field seed:lower-cased token" keys.
using ContextVocabulary = std::set<std::string>;
void CollectContextVocabulary(const TaskContext& c, ContextVocabulary* vocabulary);
// As above, but a name token or categorical value outside `vocabulary` (null = keep all) sets no bucket. A token
// the model never saw carries nothing it learned, and hashed into the bucket of a token it did see (16 buckets
// for all accelerator names: collisions are the rule) it would make an unseen accelerator or model pose as a
// specific known one.
void EncodeContext(const TaskContext& c, const ContextVocabulary* vocabulary, std::vector<float>* out);
// Appends StrategyFeatureWidth() floats.
void EncodeStrategy(const Strategy& s, std::vector<float>* out);

// Roofline estimates used as features, exposed for tests. NaN where the descriptors are unknown (0).
struct Roofline {
  double weight_gb = kMissing;
  double kv_gb = kMissing;                // KV cache of the whole batch at full length
  double flops_per_token = kMissing;      // forward pass, active parameters
  double compute_s_per_token = kMissing;  // flops/token ÷ total peak
  double memory_s_per_step = kMissing;    // (weights + KV) ÷ total bandwidth
  double headroom_gb = kMissing;          // count·mem − weights − KV
  double estimate_e2e_s = kMissing;       // prefill compute + decode steps at the roofline bound
};
Roofline ComputeRoofline(const TaskContext& c);

// Physical baseline of a metric, as log of the value (ms, tokens/s, GB), from the roofline: e2e, TTFT (prefill),
// TPOT (one decode step), throughput (tokens ÷ e2e) and peak memory (weights + KV). NaN when the descriptors do
// not allow it. The meta-model learns log(measured) − baseline, i.e. how far from the roofline a strategy runs,
// which carries over to models and accelerators it has not seen far better than the raw level does.
enum class BaselineMetric { kE2eMs, kTtftMs, kTpotMs, kThroughput, kPeakMemoryGb };
double LogRooflineBaseline(const TaskContext& c, BaselineMetric metric);

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_FEATURES_H_
