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
    for (int k = 0; k < 2; ++k) stats.Add(MakeRun("n" + std::to_string((b + k) % 40), b, "v", 100 * b * std::exp(noise(rng)), t++));
  }
  EXPECT_EQ(stats.LogLevel("v"), 0.0);
  const int64_t drift_time = t;
  // From now on "v" is 3x slower; only contexts 1..40 are visited again.
  for (int round = 0; round < 2; ++round) {
    for (uint32_t b = 1; b <= 40; ++b) stats.Add(MakeRun("n" + std::to_string(b % 40), b, "v", 300 * b * std::exp(noise(rng)), t++));
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

}  // namespace
}  // namespace accelsel::model
