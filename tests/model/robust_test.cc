// Node-share weights and thinning (model/robust.h): a flooding node is capped, honest volumes are untouched, and
// which runs are kept depends only on the runs themselves (never on process, order or hash seed).
#include "model/robust.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace accelsel::model {
namespace {

RunRecord MakeRun(const std::string& node, int i, uint32_t batch) {
  RunRecord r;
  r.run_id = absl::StrCat(node, "-", i);
  r.node_id = node;
  r.context.model.name = "llama-3-8b";
  r.context.hardware.accelerator = "h100";
  r.context.hardware.count = 1;
  r.context.workload.batch_size = batch;
  r.strategy_id = "vllm";
  r.metrics.e2e_latency_ms = 100;
  return r;
}

// Ten honest nodes with 10 runs each and one node with 1,000 runs, all in one context.
std::vector<RunRecord> FloodedContext() {
  std::vector<RunRecord> runs;
  for (int n = 0; n < 10; ++n) {
    for (int i = 0; i < 10; ++i) runs.push_back(MakeRun(absl::StrCat("honest", n), i, 8));
  }
  for (int i = 0; i < 1000; ++i) runs.push_back(MakeRun("liar", i, 8));
  return runs;
}

TEST(RobustTest, WeightsCapTheFloodingNodeAndKeepHonestRuns) {
  const std::vector<RunRecord> runs = FloodedContext();
  const std::vector<double> w = ComputeRunWeights(runs, {.max_node_share = 0.1});
  ASSERT_EQ(w.size(), runs.size());
  double liar = 0, total = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    total += w[i];
    if (runs[i].node_id == "liar") {
      liar += w[i];
    } else {
      EXPECT_DOUBLE_EQ(w[i], 1.0) << runs[i].run_id;
    }
  }
  EXPECT_LE(liar / total, 0.1 + 1e-9);
  EXPECT_GT(liar, 0.0) << "the flooding node still counts, capped";
}

TEST(RobustTest, ThinningKeepsAboutTheWeightAndIsOrderIndependent) {
  std::vector<RunRecord> runs = FloodedContext();
  const std::vector<RunRecord> kept = ThinByNodeShare(runs, {.max_node_share = 0.1});
  std::set<std::string> kept_ids;
  std::map<std::string, int> per_node;
  for (const RunRecord& r : kept) {
    kept_ids.insert(r.run_id);
    ++per_node[r.node_id];
  }
  for (int n = 0; n < 10; ++n) EXPECT_EQ(per_node[absl::StrCat("honest", n)], 10);
  // The cap is ~11.1 runs of weight for the liar (C = 0.1 × (100 + C)); a deterministic 1,000-run draw lands near it.
  EXPECT_GE(per_node["liar"], 3);
  EXPECT_LE(per_node["liar"], 25);

  // Shuffled input keeps exactly the same runs: the decision is a stable hash of run_id, not position or seed.
  std::mt19937 rng(7);
  std::shuffle(runs.begin(), runs.end(), rng);
  std::set<std::string> again;
  for (const RunRecord& r : ThinByNodeShare(runs, {.max_node_share = 0.1})) again.insert(r.run_id);
  EXPECT_EQ(again, kept_ids);
}

TEST(RobustTest, ContextsAreCappedSeparately) {
  // A node alone in its own context keeps everything there (a context seen by one node is entirely that node's).
  std::vector<RunRecord> runs = FloodedContext();
  for (int i = 0; i < 50; ++i) runs.push_back(MakeRun("liar", 5000 + i, 64));
  const std::vector<double> w = ComputeRunWeights(runs, {.max_node_share = 0.1});
  for (size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].context.workload.batch_size == 64) {
      EXPECT_DOUBLE_EQ(w[i], 1.0) << runs[i].run_id;
    }
  }
}

}  // namespace
}  // namespace accelsel::model
