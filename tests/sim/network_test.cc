// The simulator's pieces in-process: the table from a CSV, nodes and jobs, scenario parsing, truth and noise,
// baselines and argument errors.
#include "sim/network.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sim/netsim.h"
#include "sim/policies.h"
#include "sim/table.h"
#include "tests/sim/known_best_table.h"

namespace accelsel::sim {
namespace {

std::string TablePath() {
  const char* base = std::getenv("ACCELSEL_TEST_TMPDIR");
  const std::string path =
      (std::filesystem::path(base ? base : "/tmp") / absl::StrCat("sim_network_test_", getpid(), ".csv")).string();
  testing::WriteKnownBestTable(path, /*by_batch=*/true);
  return path;
}

CsvTableSpec Spec(bool maximize = false) {
  CsvTableSpec spec;
  spec.path = TablePath();
  spec.task_cols = {"batch"};
  spec.strategy_cols = {"engine"};
  spec.target_col = maximize ? "throughput" : "latency_ms";
  spec.maximize = maximize;
  spec.hardware_col = "hardware";
  spec.model_col = "model";
  return spec;
}

TEST(SimTable, CsvTasksValuesAndContexts) {
  auto table = LoadCsvTable(Spec());
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->tasks.size(), 36u);
  ASSERT_EQ(table->strategies.size(), 4u);
  EXPECT_EQ(table->strategies[0].id, "alpha");
  EXPECT_EQ(table->hardware, (std::vector<std::string>{"gpu-a", "gpu-b", "gpu-c"}));
  EXPECT_EQ(table->rows_used, 2u * (36 * 4 - 4));  // delta is missing in four tasks
  int checked = 0;
  for (const SimTask& t : table->tasks) {
    const std::string hw = t.context.hardware().accelerator();
    const int batch = static_cast<int>(t.context.extra().at("batch"));
    const double size = t.context.model().name() == "m-small" ? 1 : t.context.model().name() == "m-mid" ? 4 : 16;
    for (uint32_t s : t.present) {
      // The geometric mean of x*1.02 and x/1.02 is x.
      EXPECT_NEAR(t.value[s], testing::KnownValue(hw, size, batch, table->strategies[s].id, true), 1e-9 * t.value[s]);
      ++checked;
    }
    EXPECT_EQ(t.present.size(), hw == "gpu-a" && t.context.model().name() == "m-large" ? 3u : 4u);
    EXPECT_EQ(t.context.hardware().count(), 1u);
    EXPECT_EQ(t.context.workload().batch_size(), 1u);
  }
  EXPECT_EQ(checked, 36 * 4 - 4);
  EXPECT_EQ(table->objective, v1::OBJECTIVE_E2E_LATENCY);
}

TEST(SimTable, CsvErrorsNameTheColumn) {
  CsvTableSpec spec = Spec();
  spec.target_col = "nope";
  auto table = LoadCsvTable(spec);
  ASSERT_FALSE(table.ok());
  EXPECT_TRUE(absl::StrContains(table.status().message(), "'nope'")) << table.status();
}

TEST(SimTable, LlmInferenceBenchFixture) {
  const std::string src = std::getenv("ACCELSEL_SOURCE_DIR");
  auto table = LoadLlmBenchTable(src + "/tests/fixtures/llm_bench_small.csv", src + "/data/descriptors");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_FALSE(table->tasks.empty());
  for (const SimTask& t : table->tasks) EXPECT_GE(t.present.size(), 2u);
  EXPECT_GE(table->StrategyIndex("vllm"), 0);
}

TEST(Network, NodesFollowTasksAndJobsFollowNodes) {
  auto table = LoadCsvTable(Spec());
  ASSERT_TRUE(table.ok());
  Scenario s;
  s.nodes = 100;
  s.jobs = 3000;
  auto net = Network::Build(*table, s);
  ASSERT_TRUE(net.ok()) << net.status();
  ASSERT_EQ(net->nodes().size(), 100u);
  EXPECT_EQ(net->nodes()[0].id, "sim-node-0001");
  EXPECT_EQ(net->nodes()[99].id, "sim-node-0100");
  std::map<uint32_t, int> per_hw;
  for (const SimNode& n : net->nodes()) ++per_hw[n.hardware];
  for (const auto& [hw, n] : per_hw) EXPECT_NEAR(n, 33, 1);
  ASSERT_EQ(net->jobs().size(), 3000u);
  for (const Job& j : net->jobs()) {
    EXPECT_EQ(table->tasks[j.task].hardware, net->nodes()[j.node].hardware);
  }
  EXPECT_TRUE(net->warm_reports().empty());
  EXPECT_EQ(net->liar_favourite(), -1);
}

TEST(Network, ScenarioFlagsShapeTheRun) {
  auto table = LoadCsvTable(Spec());
  ASSERT_TRUE(table.ok());
  Scenario s;
  s.nodes = 100;
  s.jobs = 4000;
  s.warm_fraction = 0.5;
  ASSERT_TRUE(ParseLateHardware("gpu-c@0.5", &s).ok());
  s.liars = 5;
  ASSERT_TRUE(ParseDrift("alpha@0.25\xc3\x97"
                         "3",
                         &s)
                  .ok());
  s.churn = true;
  auto net = Network::Build(*table, s);
  ASSERT_TRUE(net.ok()) << net.status();
  // Late hardware: no job before it joins, its share after.
  EXPECT_EQ(net->late_job(), 2000u);
  size_t late_before = 0, late_after = 0, liar_jobs = 0;
  for (uint64_t j = 0; j < net->jobs().size(); ++j) {
    const bool late = static_cast<int>(net->nodes()[net->jobs()[j].node].hardware) == net->late_hardware();
    (j < net->late_job() ? late_before : late_after) += late ? 1 : 0;
    liar_jobs += net->nodes()[net->jobs()[j].node].liar ? 1 : 0;
  }
  EXPECT_EQ(late_before, 0u);
  EXPECT_GT(late_after, 300u);
  // Five liars at ten times the rate of ~95 honest nodes: about a third of the jobs.
  EXPECT_GT(liar_jobs, 1000u);
  EXPECT_LT(liar_jobs, 1800u);
  EXPECT_GE(net->liar_favourite(), 0);
  // Churn: nodes left and as many joined, with fresh ids.
  EXPECT_GT(net->churned_nodes(), 50u);
  EXPECT_EQ(net->nodes().size(), 100u + net->churned_nodes());
  std::set<std::string> ids;
  for (const SimNode& n : net->nodes()) ids.insert(n.id);
  EXPECT_EQ(ids.size(), net->nodes().size());
  // Warm: half the cells of the hardware present from the start.
  for (const WarmReport& w : net->warm_reports())
    EXPECT_NE(static_cast<int>(table->tasks[w.task].hardware), net->late_hardware());
  EXPECT_NEAR(static_cast<double>(net->warm_reports().size()), 0.5 * (24 * 4 - 4), 1);
  // Drift: alpha three times slower from job 1000 on.
  const int alpha = table->StrategyIndex("alpha");
  EXPECT_EQ(net->drift_job(), 1000u);
  EXPECT_DOUBLE_EQ(net->TrueValue(0, alpha, 1000), 3 * net->TrueValue(0, alpha, 999));
}

TEST(Network, NoiseIsSharedAndRegretUsesTruth) {
  auto table = LoadCsvTable(Spec());
  ASSERT_TRUE(table.ok());
  Scenario s;
  s.nodes = 30;
  s.jobs = 500;
  auto net = Network::Build(*table, s);
  ASSERT_TRUE(net.ok());
  const uint32_t task = net->jobs()[7].task;
  const uint32_t strat = table->tasks[task].present[0];
  EXPECT_EQ(net->Measured(7, task, strat), net->Measured(7, task, strat));
  EXPECT_NE(net->Measured(7, task, strat), net->Measured(8, task, strat));
  EXPECT_NEAR(std::log(net->Measured(7, task, strat) / net->TrueValue(task, strat, 7)), 0, 0.3);
  // Regret: 1 for the best, value/best otherwise, worst for a strategy not measured there.
  for (uint32_t s2 : table->tasks[task].present) {
    EXPECT_NEAR(net->Regret(task, s2, 7), net->TrueValue(task, s2, 7) / net->BestValue(task, 7), 1e-12);
  }
  EXPECT_GE(net->Regret(task, 999, 7), 1.9);  // no choice: the task's worst (2x)

  s.noise = 0;
  auto quiet = Network::Build(*table, s);
  ASSERT_TRUE(quiet.ok());
  EXPECT_DOUBLE_EQ(quiet->Measured(7, task, strat), quiet->TrueValue(task, strat, 7));
}

TEST(Network, ScenarioErrorsNameTheFlag) {
  Scenario s;
  for (const char* bad : {"alpha", "alpha@", "alpha@1.5x3", "alpha@0.5", "alpha@0.5x", "alpha@0.5x-1", "@0.5x3"}) {
    const absl::Status st = ParseDrift(bad, &s);
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_TRUE(absl::StartsWith(st.message(), "--drift ")) << st;
  }
  EXPECT_TRUE(ParseDrift("vllm@0.5x3", &s).ok());
  EXPECT_EQ(s.drift_strategy, "vllm");
  EXPECT_DOUBLE_EQ(s.drift_fraction, 0.5);
  EXPECT_DOUBLE_EQ(s.drift_factor, 3);
  EXPECT_FALSE(ParseLateHardware("gpu-c", &s).ok());
  EXPECT_FALSE(ParseLateHardware("gpu-c@1", &s).ok());
  EXPECT_TRUE(ParseLateHardware("AMD MI300X GPU@0.5", &s).ok());
  EXPECT_EQ(s.late_hardware, "AMD MI300X GPU");

  auto table = LoadCsvTable(Spec());
  ASSERT_TRUE(table.ok());
  Scenario unknown;
  unknown.late_hardware = "tpu";
  unknown.late_fraction = 0.5;
  auto net = Network::Build(*table, unknown);
  ASSERT_FALSE(net.ok());
  EXPECT_TRUE(absl::StrContains(net.status().message(), "--late-hardware")) << net.status();
  Scenario too_few;
  too_few.nodes = 2;
  EXPECT_FALSE(Network::Build(*table, too_few).ok());
}

TEST(Baselines, OracleIsOneAndTheLearnersLearn) {
  auto table = LoadCsvTable(Spec());
  ASSERT_TRUE(table.ok());
  Scenario s;
  s.nodes = 30;
  s.jobs = 3000;
  auto net = Network::Build(*table, s);
  ASSERT_TRUE(net.ok());
  const auto choices = RunBaselines(*net, BaselineOptions{});
  const auto& names = PolicyNames();
  auto regret = [&](const std::string& policy, uint64_t from) {
    const auto& c = choices[std::find(names.begin(), names.end(), policy) - names.begin()];
    double sum = 0;
    for (uint64_t j = from; j < c.size(); ++j) sum += std::log(net->Regret(net->jobs()[j].task, c[j], j));
    return std::exp(sum / (c.size() - from));
  };
  EXPECT_DOUBLE_EQ(regret("oracle", 0), 1.0);
  EXPECT_TRUE(choices[0].empty());  // accelsel is the server's
  // 36 tasks visited ~80 times each: epsilon-greedy ends near its exploration cost, below random.
  EXPECT_LT(regret("epsilon_greedy", 2000), regret("random", 2000));
  EXPECT_GT(regret("sbs", 2000), 1.0);
  EXPECT_LT(regret("sbs", 2000), regret("random", 2000));
  // default = the most common engine (alpha: all 36 tasks; delta is missing in 4).
  const auto& fixed = choices[std::find(names.begin(), names.end(), "default") - names.begin()];
  for (uint32_t f : fixed) EXPECT_EQ(table->strategies[f].id, "alpha");
}

TEST(NetsimArgs, ErrorsNameTheFlagAndTheRule) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--spawn-server"}, "--llm-inference-bench or --csv"},
      {{"--llm-inference-bench", "x.csv"}, "--server or --spawn-server"},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--jobs", "0"}, "--jobs must be an integer in [1, "},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--noise", "-1"}, "--noise must be a number in [0, 2]"},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--warm", "2"}, "--warm must be a number in [0, 1]"},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--liars", "5", "--nodes", "5"}, "--liars must be below"},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--liar-factor", "2"}, "--liar-factor needs --liars"},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--deterministic", "--concurrency", "4"},
       "--concurrency, --channels and --rate do not apply"},
      {{"--llm-inference-bench", "x.csv", "--server", "a:1", "--server-bin", "b"}, "--server-bin needs --spawn-server"},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--task-cols", "a"}, "--task-cols needs --csv"},
      {{"--csv", "x.csv", "--spawn-server", "--task-cols", "a"}, "--csv needs --strategy-cols"},
      {{"--llm-inference-bench", "x.csv", "--spawn-server", "--bogus"}, "unknown flag --bogus"},
  };
  for (const auto& [args, want] : cases) {
    auto c = ParseNetsimArgs(args);
    ASSERT_FALSE(c.ok()) << want;
    EXPECT_TRUE(absl::StrContains(c.status().message(), want)) << c.status() << " wanted " << want;
  }
  auto ok = ParseNetsimArgs(
      {"--llm-inference-bench", "x.csv", "--spawn-server", "--drift", "vllm@0.5×3", "--retrain_every_jobs", "7"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->retrain_every_jobs.value_or(0), 7u);
  EXPECT_DOUBLE_EQ(ok->scenario.drift_factor, 3);
}

}  // namespace
}  // namespace accelsel::sim
