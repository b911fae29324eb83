// Poisoning resistance for training: per-run weights such that no node holds more than a fixed share of any task
// context's total weight, and a thinning helper for learners that take no weights.
#ifndef ACCELSEL_MODEL_ROBUST_H_
#define ACCELSEL_MODEL_ROBUST_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "model/types.h"

namespace accelsel::model {

struct NodeShareOptions {
  // Largest share of a context's total weight one node may hold. With k nodes in a context the effective cap is
  // max(max_node_share, 1/k) (a context seen by one node is entirely that node's).
  double max_node_share = 0.1;
};

// All the node-share rule reads of a run: small, so that a caller that cannot hold every run (the trainer's
// two-pass scan of the store) can decide from keys alone and read only the runs kept.
struct NodeShareKey {
  uint64_t context = 0;  // ContextKey(run.context)
  uint64_t node = 0;     // util::StableHash(run.node_id)
  uint64_t draw = 0;     // ThinningDraw(run.run_id): decides whether a run of weight below 1 stays
};
NodeShareKey NodeShareKeyOf(const RunRecord& run);
uint64_t ThinningDraw(std::string_view run_id);

// Weight in (0, 1] per run (same order as `runs`). Runs are grouped by exact task context (model::ContextKey);
// within a context a node's runs share the weight min(count, C), where C is the largest cap for which every node
// holds at most the allowed share (water-filling over node counts). Honest nodes with ordinary volumes keep
// weight 1; a node that floods a context is scaled down to the cap.
std::vector<double> ComputeRunWeights(const std::vector<RunRecord>& runs, const NodeShareOptions& options = {});
std::vector<double> ComputeRunWeights(const std::vector<NodeShareKey>& keys, const NodeShareOptions& options = {});

// For learners without sample weights: keeps each run with probability equal to its weight, deterministically
// (a hash of run_id decides), so repeated training on the same data keeps the same runs.
std::vector<RunRecord> ThinByNodeShare(std::vector<RunRecord> runs, const NodeShareOptions& options = {});
// The same decision on keys: keep[i] for keys[i]. Memory besides the keys: 24 bytes per key (a sort of their
// positions by context and node).
std::vector<bool> KeepByNodeShare(const std::vector<NodeShareKey>& keys, const NodeShareOptions& options = {});

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_ROBUST_H_
