// Node-share weights for training (see robust.h).
#include "model/robust.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

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

// The weight of each (context, node): min(1, C / count) with C the context's water-filled cap. Sorted pairs rather
// than a hash map: 16 bytes a run while counting, then 24 per distinct pair (the trainer's scan of a large store
// calls this on every stored run).
class PairWeights {
 public:
  PairWeights(const std::vector<NodeShareKey>& keys, const NodeShareOptions& options) {
    pairs_.reserve(keys.size());
    for (const NodeShareKey& k : keys) pairs_.emplace_back(k.context, k.node);
    std::sort(pairs_.begin(), pairs_.end());
    std::vector<double> counts;  // per distinct pair
    size_t out = 0;
    for (size_t i = 0; i < pairs_.size(); ++i) {
      if (out > 0 && pairs_[out - 1] == pairs_[i]) {
        counts.back() += 1;
      } else {
        pairs_[out++] = pairs_[i];
        counts.push_back(1);
      }
    }
    pairs_.resize(out);
    pairs_.shrink_to_fit();
    weights_.assign(out, 1.0);  // a context seen by one node is entirely that node's: weight 1
    std::vector<double> c;
    for (size_t begin = 0; begin < out;) {
      size_t end = begin + 1;
      while (end < out && pairs_[end].first == pairs_[begin].first) ++end;
      if (end - begin > 1) {
        c.assign(counts.begin() + static_cast<std::ptrdiff_t>(begin),
                 counts.begin() + static_cast<std::ptrdiff_t>(end));
        const double share = std::max(options.max_node_share, 1.0 / static_cast<double>(c.size()));
        const double cap = WaterFillCap(c, share);
        for (size_t j = begin; j < end; ++j) weights_[j] = std::min(1.0, cap / counts[j]);
      }
      begin = end;
    }
  }

  double Of(const NodeShareKey& k) const {
    const auto it = std::lower_bound(pairs_.begin(), pairs_.end(), std::make_pair(k.context, k.node));
    return weights_[static_cast<size_t>(it - pairs_.begin())];
  }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> pairs_;  // distinct (context, node), sorted
  std::vector<double> weights_;
};

std::vector<NodeShareKey> KeysOf(const std::vector<RunRecord>& runs) {
  std::vector<NodeShareKey> keys;
  keys.reserve(runs.size());
  for (const RunRecord& r : runs) keys.push_back(NodeShareKeyOf(r));
  return keys;
}

}  // namespace

uint64_t ThinningDraw(std::string_view run_id) { return StableHash(run_id, 0x7417); }

NodeShareKey NodeShareKeyOf(const RunRecord& run) {
  return NodeShareKey{ContextKey(run.context), StableHash(run.node_id), ThinningDraw(run.run_id)};
}

std::vector<double> ComputeRunWeights(const std::vector<NodeShareKey>& keys, const NodeShareOptions& options) {
  const PairWeights by_pair(keys, options);
  std::vector<double> weights;
  weights.reserve(keys.size());
  for (const NodeShareKey& k : keys) weights.push_back(by_pair.Of(k));
  return weights;
}

std::vector<double> ComputeRunWeights(const std::vector<RunRecord>& runs, const NodeShareOptions& options) {
  return ComputeRunWeights(KeysOf(runs), options);
}

std::vector<bool> KeepByNodeShare(const std::vector<NodeShareKey>& keys, const NodeShareOptions& options) {
  const PairWeights by_pair(keys, options);
  std::vector<bool> keep(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const double w = by_pair.Of(keys[i]);
    // A stable hash (absl::Hash is seeded per process): every retrain, in any process, keeps the same runs.
    const double u = static_cast<double>(keys[i].draw >> 11) / static_cast<double>(1ULL << 53);
    keep[i] = w >= 1.0 || u < w;
  }
  return keep;
}

std::vector<RunRecord> ThinByNodeShare(std::vector<RunRecord> runs, const NodeShareOptions& options) {
  const std::vector<bool> keep = KeepByNodeShare(KeysOf(runs), options);
  std::vector<RunRecord> kept;
  kept.reserve(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    if (keep[i]) kept.push_back(std::move(runs[i]));
  }
  return kept;
}

}  // namespace accelsel::model
