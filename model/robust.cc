// Node-share weights for training (see robust.h).
#include "model/robust.h"

#include <algorithm>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "model/context_key.h"
#include "model/features.h"
#include "model/observed_stats.h"

namespace accelsel::model {
namespace {

// The largest per-node cap C with C <= share * sum_i min(count_i, C), given node counts; share >= 1/k.
double WaterFillCap(std::vector<double> counts, double share) {
  std::sort(counts.begin(), counts.end());
  const size_t k = counts.size();
  double sum_below = 0;  // sum of counts under the current segment
  double lower = 0;
  for (size_t j = 0; j < k; ++j) {
    const double m = static_cast<double>(k - j);  // nodes whose count is >= counts[j]
    // Within [lower, counts[j]]: f(C) = share * (sum_below + m*C) - C.
    if (share * m >= 1.0) {
      lower = counts[j];
    } else {
      const double c = share * sum_below / (1.0 - share * m);
      if (c <= counts[j]) return std::max(c, lower);
      lower = counts[j];
    }
    sum_below += counts[j];
  }
  return counts.empty() ? 0 : counts.back();
}

}  // namespace

std::vector<double> ComputeRunWeights(const std::vector<RunRecord>& runs, const NodeShareOptions& options) {
  // context -> node -> run count
  absl::flat_hash_map<uint64_t, absl::flat_hash_map<std::string, double>> counts;
  std::vector<uint64_t> keys(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    keys[i] = ContextKey(runs[i].context);
    counts[keys[i]][runs[i].node_id] += 1;
  }
  absl::flat_hash_map<uint64_t, double> caps;
  for (const auto& [key, by_node] : counts) {
    std::vector<double> c;
    c.reserve(by_node.size());
    for (const auto& [node, n] : by_node) c.push_back(n);
    const double share = std::max(options.max_node_share, 1.0 / static_cast<double>(c.size()));
    caps[key] = WaterFillCap(std::move(c), share);
  }
  std::vector<double> weights(runs.size(), 1.0);
  for (size_t i = 0; i < runs.size(); ++i) {
    const double n = counts[keys[i]][runs[i].node_id];
    weights[i] = std::min(1.0, caps[keys[i]] / n);
  }
  return weights;
}

std::vector<RunRecord> ThinByNodeShare(std::vector<RunRecord> runs, const NodeShareOptions& options) {
  const std::vector<double> w = ComputeRunWeights(runs, options);
  std::vector<RunRecord> kept;
  kept.reserve(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    // A stable hash (absl::Hash is seeded per process): every retrain, in any process, keeps the same runs.
    const double u = static_cast<double>(StableHash(runs[i].run_id, 0x7417) >> 11) / static_cast<double>(1ULL << 53);
    if (w[i] >= 1.0 || u < w[i]) kept.push_back(std::move(runs[i]));
  }
  return kept;
}

}  // namespace accelsel::model
