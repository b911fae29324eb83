// Observed statistics: the network-wide level of a strategy. A strategy that gets slower everywhere moves every
// cell of it, visited since or not; run-to-run noise and a few flooding liars do not move it.
#include "model/observed_stats.h"

#include <cmath>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace accelsel::model {
namespace {

TaskContext Ctx(uint32_t batch) {
  TaskContext c;
  c.model.name = "acme/model-7b";
  c.hardware.accelerator = "Acme X1";
  c.hardware.count = 1;
  c.workload.prompt_tokens = 256;
  c.workload.output_tokens = 256;
  c.workload.batch_size = batch;
  return c;
}

RunRecord MakeRun(const std::string& node, uint32_t batch, const std::string& strategy, double ms, int64_t time_ms) {
  static int next = 0;
  RunRecord r;
  r.run_id = "r" + std::to_string(next++);
  r.node_id = node;
  r.time_unix_ms = time_ms;
  r.context = Ctx(batch);
  r.strategy_id = strategy;
  r.metrics.e2e_latency_ms = ms;
  r.metrics.throughput_tokens_per_s = 1000.0 / ms;
  return r;
}

double Median(const ObservedStats& stats, uint32_t batch, const std::string& strategy, Objective o) {
  const auto s = stats.Exact(Ctx(batch), strategy, o, 0.8);
  return s.has_value() ? s->median : -1;
}

TEST(ObservedStatsLevelTest, NetworkWideSlowdownMovesUnvisitedCellsAndRestatesRunsAtBaseLevel) {
  ObservedStats stats;
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(0, 0.05);
  int64_t t = 1000;
  // 100 contexts, two runs each from different nodes: every cell has a reference.
  for (uint32_t b = 1; b <= 100; ++b) {
    for (int k = 0; k < 2; ++k)
      stats.Add(MakeRun("n" + std::to_string((b + k) % 40), b, "v", 100 * b * std::exp(noise(rng)), t++));
  }
  EXPECT_EQ(stats.LogLevel("v"), 0.0);
  const int64_t drift_time = t;
  // From now on "v" is 3x slower; only contexts 1..40 are visited again.
  for (int round = 0; round < 2; ++round) {
    for (uint32_t b = 1; b <= 40; ++b)
      stats.Add(MakeRun("n" + std::to_string(b % 40), b, "v", 300 * b * std::exp(noise(rng)), t++));
  }
  EXPECT_NEAR(stats.LogLevel("v"), std::log(3.0), 0.06);
  // Context 90 was never visited after the slowdown, yet its estimate follows it (latency up, throughput down).
  EXPECT_NEAR(Median(stats, 90, "v", Objective::kE2eLatency) / 9000, 3.0, 0.25);
  EXPECT_NEAR(Median(stats, 90, "v", Objective::kThroughput) * 9000 / 1000, 1 / 3.0, 0.03);
  // The trainer learns each run at the level of its time.
  const auto levels = stats.Levels();
  RunRecord before = MakeRun("n1", 90, "v", 9000, drift_time - 1);
  RunRecord after = MakeRun("n1", 90, "v", 27000, t);
  ObservedStats::ToBaseLevel(levels, &before);
  ObservedStats::ToBaseLevel(levels, &after);
  EXPECT_DOUBLE_EQ(before.metrics.e2e_latency_ms, 9000);
  EXPECT_NEAR(after.metrics.e2e_latency_ms / 9000, 1.0, 0.1);
  EXPECT_NEAR(after.metrics.throughput_tokens_per_s * 9000 / 1000, 1.0, 0.1);
  // Another strategy is untouched.
  EXPECT_EQ(stats.LogLevel("w"), 0.0);
}

TEST(ObservedStatsLevelTest, NoiseAndAFewFloodingLiarsDoNotMoveTheLevel) {
  ObservedStats stats;
  std::mt19937_64 rng(2);
  std::normal_distribution<double> noise(0, 0.10);
  int64_t t = 1;
  for (int i = 0; i < 20000; ++i) {
    const uint32_t b = 1 + i % 200;
    // 3 liar nodes report 3x slower and send half of all reports; 60 honest nodes send the rest.
    const bool liar = i % 2 == 0;
    const std::string node = liar ? "liar" + std::to_string(i % 3) : "honest" + std::to_string(i % 60);
    stats.Add(MakeRun(node, b, "v", (liar ? 300 : 100) * b * std::exp(noise(rng)), t++));
  }
  EXPECT_EQ(stats.LogLevel("v"), 0.0);
  EXPECT_TRUE(stats.Levels().empty());
}

// A node that reports, across contexts, far from its peers loses its say everywhere, including the contexts where
// it is the only reporter; a node a little off (a slower machine) keeps it.
TEST(ObservedStatsTrustTest, ALiarAcrossContextsIsDistrustedAndAModestlySlowNodeIsNot) {
  ObservedStats stats;
  int64_t t = 1;
  for (uint32_t b = 1; b <= 40; ++b) {
    stats.Add(MakeRun("honest-a", b, "v", 100 * b, t++));
    stats.Add(MakeRun("honest-b", b, "v", 100 * b, t++));
    stats.Add(MakeRun("slower", b, "v", 120 * b, t++));  // 20 % slower hardware, honestly reported
    stats.Add(MakeRun("liar", b, "v", 300 * b, t++));
  }
  stats.Add(MakeRun("liar", 99, "v", 5, t++));  // a context only the liar reports
  const auto distrusted = stats.DistrustedNodes();
  EXPECT_TRUE(distrusted.contains(ObservedStats::NodeHash("liar")));
  EXPECT_FALSE(distrusted.contains(ObservedStats::NodeHash("slower")));
  EXPECT_FALSE(distrusted.contains(ObservedStats::NodeHash("honest-a")));
  // The liar no longer counts: the cell's median is the honest nodes' (100, 100, 120 -> 100).
  EXPECT_NEAR(Median(stats, 7, "v", Objective::kE2eLatency), 700, 1e-6);
  const auto cell = stats.Exact(Ctx(7), "v", Objective::kE2eLatency, 0.8);
  ASSERT_TRUE(cell.has_value());
  EXPECT_EQ(cell->nodes, 3u);
  // Where only the liar reported there is no trusted evidence at all.
  EXPECT_FALSE(stats.Exact(Ctx(99), "v", Objective::kE2eLatency, 0.8).has_value());
  // An operator's quarantine works the same way, whatever the reports say, and can be lifted.
  stats.SetQuarantined({ObservedStats::NodeHash("honest-a")});
  EXPECT_EQ(stats.Exact(Ctx(7), "v", Objective::kE2eLatency, 0.8)->nodes, 2u);
  stats.SetQuarantined({});
  EXPECT_EQ(stats.Exact(Ctx(7), "v", Objective::kE2eLatency, 0.8)->nodes, 3u);
}

// Trust bookkeeping is bounded: beyond max_tracked_nodes, a new node is not judged at all.
TEST(ObservedStatsTrustTest, TrackedNodesAreBounded) {
  ObservedStatsOptions o;
  o.max_tracked_nodes = 1;  // honest-b is judged first (honest-a, first in each cell, has no peers yet)
  ObservedStats stats(o);
  int64_t t = 1;
  for (uint32_t b = 1; b <= 40; ++b) {
    stats.Add(MakeRun("honest-a", b, "v", 100 * b, t++));
    stats.Add(MakeRun("honest-b", b, "v", 100 * b, t++));
    stats.Add(MakeRun("liar", b, "v", 300 * b, t++));
  }
  EXPECT_TRUE(stats.DistrustedNodes().empty());
}

// --- Outlying nodes: the median of a node's runs against the median of its peers' -------------------------------

// A node is judged by its typical run: 10x slower in most of its runs is an outlier even if some runs look normal;
// a node with a few slow runs among normal ones (a busy machine) is not.
TEST(ObservedStatsSuspectTest, ANodeIsJudgedByTheMedianOfItsRuns) {
  ObservedStats stats;
  int64_t t = 1;
  for (const char* node : {"h1", "h2", "h3"}) {
    for (int k = 0; k < 3; ++k) stats.Add(MakeRun(node, 8, "v", 100 * (1 + 0.01 * k), t++));
  }
  AddOutcome slow;
  for (double ms : {100.0, 100.0, 1000.0, 1000.0, 1000.0}) slow = stats.AddChecked(MakeRun("slow", 8, "v", ms, t++));
  EXPECT_TRUE(slow.suspect) << "z " << slow.z;
  EXPECT_GT(slow.z, 10);
  AddOutcome busy;
  for (double ms : {1000.0, 1000.0, 100.0, 100.0, 100.0}) busy = stats.AddChecked(MakeRun("busy", 8, "v", ms, t++));
  EXPECT_FALSE(busy.suspect) << "z " << busy.z;
  EXPECT_LT(std::abs(busy.z), 1);
}

// The yardstick is the median of the other nodes' medians: three colluding liars among four honest nodes cannot
// move it, so each of them is flagged, the last one too.
TEST(ObservedStatsSuspectTest, AColludingMinorityCannotMoveTheYardstick) {
  ObservedStats stats;
  int64_t t = 1;
  for (int h = 0; h < 4; ++h) stats.Add(MakeRun("honest" + std::to_string(h), 8, "v", 100 * (1 + 0.01 * h), t++));
  for (int l = 0; l < 3; ++l) {
    const AddOutcome o = stats.AddChecked(MakeRun("liar" + std::to_string(l), 8, "v", 1000, t++));
    EXPECT_TRUE(o.suspect) << "liar" << l << " z " << o.z;
  }
}

// --- Trust ----------------------------------------------------------------------------------------------------------

// Lying fast is lying: a node that reports a third of its peers' latencies everywhere is distrusted like a slow liar.
TEST(ObservedStatsTrustTest, AFastLiarIsDistrustedToo) {
  ObservedStats stats;
  int64_t t = 1;
  for (uint32_t b = 1; b <= 40; ++b) {
    stats.Add(MakeRun("honest-a", b, "v", 100 * b, t++));
    stats.Add(MakeRun("honest-b", b, "v", 100 * b, t++));
    stats.Add(MakeRun("faster", b, "v", 85 * b, t++));  // 15 % faster hardware, honestly reported
    stats.Add(MakeRun("liar", b, "v", 33 * b, t++));
  }
  const auto distrusted = stats.DistrustedNodes();
  EXPECT_TRUE(distrusted.contains(ObservedStats::NodeHash("liar")));
  EXPECT_FALSE(distrusted.contains(ObservedStats::NodeHash("faster")));
  EXPECT_FALSE(distrusted.contains(ObservedStats::NodeHash("honest-a")));
  EXPECT_NEAR(Median(stats, 7, "v", Objective::kE2eLatency), 700, 1e-6);
}

// A node is judged only once it has trust_min_residuals residuals: a few unlucky first runs do not cost an honest
// node its say everywhere.
TEST(ObservedStatsTrustTest, ANodeIsNotJudgedOnItsFirstFewReports) {
  ObservedStatsOptions o;
  ObservedStats stats(o);
  int64_t t = 1;
  uint32_t b = 1;
  auto visit = [&](uint32_t contexts) {
    for (uint32_t end = b + contexts; b < end; ++b) {
      stats.Add(MakeRun("honest-a", b, "v", 100 * b, t++));
      stats.Add(MakeRun("honest-b", b, "v", 100 * b, t++));
      stats.Add(MakeRun("off", b, "v", 300 * b, t++));
    }
  };
  visit(static_cast<uint32_t>(o.trust_min_residuals) - 1);
  EXPECT_FALSE(stats.DistrustedNodes().contains(ObservedStats::NodeHash("off")));
  visit(10);
  EXPECT_TRUE(stats.DistrustedNodes().contains(ObservedStats::NodeHash("off")));
}

// --- Network-wide levels --------------------------------------------------------------------------------------------

// `contexts` contexts with runs of `nodes` nodes each (node names rotate with the context), at `factor` x 100 ms x
// batch.
void VisitAll(ObservedStats& stats, uint32_t contexts, int nodes, double factor, std::mt19937_64& rng, int64_t& t,
              const std::string& prefix = "n") {
  std::normal_distribution<double> noise(0, 0.05);
  for (uint32_t b = 1; b <= contexts; ++b) {
    for (int k = 0; k < nodes; ++k) {
      stats.Add(MakeRun(prefix + std::to_string((b + k) % 40), b, "v", factor * 100 * b * std::exp(noise(rng)), t++));
    }
  }
}

// A second network-wide slowdown adds to the first: 3x, then 2x more, is 6x.
TEST(ObservedStatsLevelTest, SuccessiveSlowdownsCompound) {
  ObservedStats stats;
  std::mt19937_64 rng(4);
  int64_t t = 1000;
  VisitAll(stats, 100, 2, 1.0, rng, t);
  for (int round = 0; round < 2; ++round) VisitAll(stats, 40, 1, 3.0, rng, t);
  ASSERT_NEAR(stats.LogLevel("v"), std::log(3.0), 0.06);
  for (int round = 0; round < 2; ++round) VisitAll(stats, 40, 1, 6.0, rng, t);
  EXPECT_NEAR(stats.LogLevel("v"), std::log(6.0), 0.12);
  EXPECT_NEAR(Median(stats, 90, "v", Objective::kE2eLatency) / 9000, 6.0, 0.6);
}

// Two nodes (level_min_nodes is three) that see a strategy 40 % slower everywhere, too little to be distrusted, do
// not move its level for the whole network.
TEST(ObservedStatsLevelTest, TwoNodesCannotMoveTheLevel) {
  ObservedStats stats;
  std::mt19937_64 rng(5);
  int64_t t = 1000;
  VisitAll(stats, 100, 2, 1.0, rng, t);
  for (int round = 0; round < 3; ++round) {
    for (uint32_t b = 1; b <= 100; ++b) {
      stats.Add(MakeRun(b % 2 == 0 ? "slow-a" : "slow-b", b, "v", 140 * b, t++));
    }
  }
  EXPECT_FALSE(stats.DistrustedNodes().contains(ObservedStats::NodeHash("slow-a")));
  EXPECT_EQ(stats.LogLevel("v"), 0.0);
}

// Nodes that disagree widely (per-node offsets from -30 % to +42 %, median +19 %) show no significant shift: the level
// moves only when the median of the per-node medians exceeds three standard errors, not on a noisy majority.
TEST(ObservedStatsLevelTest, DisagreeingNodesDoNotMoveTheLevel) {
  ObservedStats stats;
  std::mt19937_64 rng(6);
  int64_t t = 1000;
  std::normal_distribution<double> noise(0, 0.01);
  for (uint32_t b = 1; b <= 40; ++b) {
    for (int a = 0; a < 5; ++a)
      stats.Add(MakeRun("anchor" + std::to_string(a), b, "v", 100 * b * std::exp(noise(rng)), t++));
  }
  ASSERT_EQ(stats.LogLevel("v"), 0.0);
  const double offsets[] = {-0.35, -0.3, 0.15, 0.2, 0.3, 0.35};
  for (uint32_t b = 1; b <= 40; ++b) {
    for (int k = 0; k < 6; ++k) {
      stats.Add(MakeRun("node" + std::to_string(k), b, "v", 100 * b * std::exp(offsets[k] + noise(rng)), t++));
    }
  }
  EXPECT_TRUE(stats.DistrustedNodes().empty());
  EXPECT_EQ(stats.LogLevel("v"), 0.0);
}

// --- Intervals ------------------------------------------------------------------------------------------------------

// A cell's interval weights every node equally: a node flooding a cell with runs 30 % slower does not set its lower
// bound.
TEST(ObservedStatsIntervalTest, AFloodingNodeDoesNotSetTheInterval) {
  ObservedStats stats;
  int64_t t = 1;
  for (int k = 0; k < 3; ++k) {
    stats.Add(MakeRun("honest-a", 8, "v", 100, t++));
    stats.Add(MakeRun("honest-b", 8, "v", 100, t++));
  }
  for (int k = 0; k < 300; ++k) stats.Add(MakeRun("flood", 8, "v", 130, t++));
  const auto cell = stats.Exact(Ctx(8), "v", Objective::kE2eLatency, 0.8);
  ASSERT_TRUE(cell.has_value());
  EXPECT_EQ(cell->nodes, 3u);
  EXPECT_DOUBLE_EQ(cell->median, 100);
  EXPECT_DOUBLE_EQ(cell->low, 100);
  EXPECT_DOUBLE_EQ(cell->high, 130);
}

}  // namespace
}  // namespace accelsel::model
