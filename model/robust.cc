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

// Calls fn(i, weight of keys[i]) for every key, in no particular order: min(1, C / count) of the key's (context,
// node), with C the context's water-filled cap. The keys' positions are sorted by (context, node), so each pair's runs
// are counted and weighed together, with no lookup per run (the trainer's first pass calls this on every stored run:
// 24 bytes a run for the sort).
template <typename Fn>
void ForEachRunWeight(const std::vector<NodeShareKey>& keys, const NodeShareOptions& options, Fn fn) {
  struct Item {
    uint64_t context, node;
    size_t index;
  };
  std::vector<Item> items;
  items.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) items.push_back(Item{keys[i].context, keys[i].node, i});
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.context != b.context ? a.context < b.context : a.node < b.node;
  });
  std::vector<double> counts;    // per node of the context, in node order
  std::vector<size_t> node_end;  // where each node's items end
  for (size_t begin = 0; begin < items.size();) {
    counts.clear();
    node_end.clear();
    size_t end = begin;
    for (; end < items.size() && items[end].context == items[begin].context; ++end) {
      if (end == begin || items[end].node != items[end - 1].node) {
        if (end != begin) node_end.push_back(end);
        counts.push_back(0);
      }
      counts.back() += 1;
    }
    node_end.push_back(end);
    // A context seen by one node is entirely that node's: weight 1.
    double cap = counts.front();
    if (counts.size() > 1) {
      const double share = std::max(options.max_node_share, 1.0 / static_cast<double>(counts.size()));
      cap = WaterFillCap(counts, share);
    }
    for (size_t n = 0, p = begin; n < counts.size(); ++n) {
      const double w = std::min(1.0, cap / counts[n]);
      for (; p < node_end[n]; ++p) fn(items[p].index, w);
    }
    begin = end;
  }
}

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
  std::vector<double> weights(keys.size());
  ForEachRunWeight(keys, options, [&weights](size_t i, double w) { weights[i] = w; });
  return weights;
}

std::vector<double> ComputeRunWeights(const std::vector<RunRecord>& runs, const NodeShareOptions& options) {
  return ComputeRunWeights(KeysOf(runs), options);
}

std::vector<bool> KeepByNodeShare(const std::vector<NodeShareKey>& keys, const NodeShareOptions& options) {
  std::vector<bool> keep(keys.size());
  ForEachRunWeight(keys, options, [&](size_t i, double w) {
    // A stable hash (absl::Hash is seeded per process): every retrain, in any process, keeps the same runs.
    const double u = static_cast<double>(keys[i].draw >> 11) / static_cast<double>(1ULL << 53);
    keep[i] = w >= 1.0 || u < w;
  });
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
