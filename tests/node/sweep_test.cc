// node/sweep: every (job, strategy, repetition) once, skipping missing model files; an interrupted table (last row
// lost, the one before cut in half) resumes without repeating a row; the table reads back through the project's
// LLM-Inference-Bench importer with the descriptor tables written beside it.
#include "node/sweep.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "datasets/llm_inference_bench.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/catalogue.h"
#include "tests/node/fake_engine.h"
#include "tests/node/gguf_writer.h"
#include "tests/node/node_test_util.h"
#include "util/csv.h"
#include "util/file.h"

namespace accelsel::node {
namespace {

using testing::FakeEngine;
using ::testing::HasSubstr;
using testing::LlamaModel;
using testing::TestHost;

std::vector<v1::Strategy> ThreeRunnableAndOneMissing() {
  return {ToStrategy(DefaultSettings()), ToStrategy({WeightFormat::kQ8_0, KvType::kQ8_0, FlashAttn::kOn, 2, 2048, 512}),
          ToStrategy({WeightFormat::kF16, KvType::kF16, FlashAttn::kOff, 1, 512, 128}),
          ToStrategy({WeightFormat::kQ4_0, KvType::kF16, FlashAttn::kOn, 2, 2048, 512})};  // no Q4_0 file
}

class SweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir("sweep");
    models_dir_ = dir_ + "/models";
    std::filesystem::create_directories(models_dir_);
    LlamaModel(2, 64, 4, 4, 128).Write(models_dir_ + "/tiny.F16.gguf");
    LlamaModel(2, 64, 4, 4, 128, 0, 0, /*file_type=*/7).Write(models_dir_ + "/tiny.Q8_0.gguf");
    LlamaModel(3, 64, 8, 2, 128).Write(models_dir_ + "/tiny-gqa.F16.gguf");
    LlamaModel(3, 64, 8, 2, 128, 0, 0, 7).Write(models_dir_ + "/tiny-gqa.Q8_0.gguf");
    auto jobs = ParseJobs(
        "{\"id\":\"a\",\"model\":\"tiny\",\"prompt_tokens\":16,\"output_tokens\":16}\n"
        "{\"id\":\"b\",\"model\":\"tiny-gqa\",\"prompt_tokens\":32,\"output_tokens\":32,\"parallel\":2}\n",
        "jobs.jsonl");
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    jobs_ = *jobs;
    options_.out_csv = dir_ + "/out/table.csv";
    options_.repetitions = 2;
    std::filesystem::create_directories(dir_ + "/out");
  }

  absl::StatusOr<SweepStats> Sweep(FakeEngine& engine) {
    ModelFiles models(models_dir_);
    std::ostringstream progress;
    return RunSweep(jobs_, ThreeRunnableAndOneMissing(), engine, models, TestHost(), options_, &progress);
  }

  std::vector<std::string> Lines() {
    auto text = util::ReadFile(options_.out_csv);
    EXPECT_TRUE(text.ok());
    std::vector<std::string> lines = absl::StrSplit(*text, '\n', absl::SkipEmpty());
    return lines;
  }

  std::string dir_, models_dir_;
  std::vector<Job> jobs_;
  SweepOptions options_;
};

TEST_F(SweepTest, RunsEveryRowOnceAndResumesAfterAnInterruption) {
  FakeEngine engine;
  auto stats = Sweep(engine);
  ASSERT_TRUE(stats.ok()) << stats.status();
  // 2 jobs x 3 strategies with a model file x 2 repetitions; the Q4_0 strategy has no file for either job.
  EXPECT_EQ(stats->rows_written, 12u);
  EXPECT_EQ(stats->missing_files, 2u);
  EXPECT_EQ(stats->rows_present, 0u);
  EXPECT_EQ(engine.calls.size(), 12u);
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 13u);
  EXPECT_EQ(lines[0], absl::StrJoin(SweepHeader(), ","));

  // An interruption: the last row never written, the one before cut in the middle of its line.
  const std::string kept =
      absl::StrJoin(lines.begin(), lines.end() - 2, "\n") + "\n" + lines[11].substr(0, lines[11].size() / 2);
  { std::ofstream(options_.out_csv, std::ios::trunc) << kept; }
  FakeEngine resumed;
  stats = Sweep(resumed);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->rows_written, 2u);
  EXPECT_EQ(stats->rows_present, 10u);
  ASSERT_EQ(resumed.calls.size(), 2u);
  EXPECT_EQ(resumed.calls[0].job_id, "b");
  EXPECT_EQ(Lines().size(), 13u);

  // Nothing left: no run at all.
  FakeEngine idle;
  stats = Sweep(idle);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->rows_written, 0u);
  EXPECT_EQ(stats->rows_present, 12u);
  EXPECT_TRUE(idle.calls.empty());

  // Every (job, strategy, repetition) exactly once.
  auto table = util::ReadCsvFile(options_.out_csv);
  ASSERT_TRUE(table.ok()) << table.status();
  std::set<std::string> keys;
  for (const auto& row : table->rows) {
    EXPECT_TRUE(keys.insert(row[table->Column("Job")] + "|" + row[table->Column("Framework")] + "|" +
                            row[table->Column("Repetition")])
                    .second);
  }
  EXPECT_EQ(keys.size(), 12u);
}

TEST_F(SweepTest, TableReadsBackThroughTheLlmInferenceBenchImporter) {
  FakeEngine engine;
  ASSERT_TRUE(Sweep(engine).ok());
  datasets::LlmBenchImportStats stats;
  auto runs = datasets::LoadLlmInferenceBench(options_.out_csv, dir_ + "/out", &stats);
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(stats.rows_read, 12u);
  EXPECT_EQ(stats.rows_skipped, 0u) << (stats.skip_reasons.empty() ? "" : stats.skip_reasons[0]);
  EXPECT_EQ(stats.rows_unknown_model, 0u);
  EXPECT_EQ(stats.rows_unknown_accelerator, 0u);
  ASSERT_EQ(runs->size(), 12u);
  std::set<std::string> strategies;
  for (const auto& r : *runs) {
    strategies.insert(r.strategy_id);
    EXPECT_EQ(r.context.hardware.accelerator, "Test CPU (2 cores)");
    EXPECT_EQ(r.context.hardware.memory_bandwidth_gbps, 20);
    if (r.context.model.name == "tiny-gqa") {
      EXPECT_EQ(r.context.model.kv_heads, 2u);
      EXPECT_EQ(r.context.model.layers, 3u);
      EXPECT_EQ(r.context.workload.batch_size, 2u);
      EXPECT_EQ(r.context.workload.prompt_tokens, 32u);
    }
    EXPECT_GT(r.metrics.e2e_latency_ms, 0);
  }
  // The importer keeps the catalogue's ids as they are (lower case, id alphabet).
  EXPECT_EQ(strategies, (std::set<std::string>{kDefaultStrategyId, "llamacpp:q8_0:kv=q8_0:fa=on:t2:b2048/512",
                                               "llamacpp:f16:kv=f16:fa=off:t1:b512/128"}));
  // The e2e latency of a row is the engine's: the fake's formula for job a with the default settings.
  Job a = jobs_[0];
  FakeEngine fresh;
  const double expected_ms = fresh.Run(a, DefaultSettings(), "").e2e_latency_ms;
  bool found = false;
  for (const auto& r : *runs) {
    if (r.context.model.name == "tiny" && r.strategy_id == kDefaultStrategyId) {
      EXPECT_NEAR(r.metrics.e2e_latency_ms, expected_ms, expected_ms * 1e-5);
      found = true;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/out/table.machine.json"));
}

TEST_F(SweepTest, FailedRunsAreRowsWithTheirStatusThatTheImporterSkips) {
  FakeEngine engine;
  engine.fail_models = {"tiny-gqa"};
  auto stats = Sweep(engine);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->failed_runs, 6u);
  auto table = util::ReadCsvFile(options_.out_csv);
  ASSERT_TRUE(table.ok());
  size_t crashes = 0;
  for (const auto& row : table->rows) {
    if (row[table->Column("Status")] == "CRASH") {
      ++crashes;
      EXPECT_EQ(row[table->Column("Latency")], "");
      EXPECT_THAT(row[table->Column("Message")], HasSubstr("failed to load"));
    }
  }
  EXPECT_EQ(crashes, 6u);
  datasets::LlmBenchImportStats import;
  auto runs = datasets::LoadLlmInferenceBench(options_.out_csv, dir_ + "/out", &import);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 6u);
  EXPECT_EQ(import.rows_skipped, 6u);
}

TEST_F(SweepTest, RefusesUnequalLengthsAndAForeignTable) {
  auto jobs = ParseJobs("{\"id\":\"x\",\"model\":\"tiny\",\"prompt_tokens\":16,\"output_tokens\":8}\n", "j.jsonl");
  ASSERT_TRUE(jobs.ok());
  FakeEngine engine;
  ModelFiles models(models_dir_);
  auto stats = RunSweep(*jobs, ThreeRunnableAndOneMissing(), engine, models, TestHost(), options_, nullptr);
  ASSERT_FALSE(stats.ok());
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("line 1: output_tokens: must equal prompt_tokens"));

  { std::ofstream(options_.out_csv) << "Hardware,Latency\nx,1\n"; }
  stats = RunSweep(jobs_, ThreeRunnableAndOneMissing(), engine, models, TestHost(), options_, nullptr);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("header is not this sweep's"));
  EXPECT_TRUE(engine.calls.empty());
}

}  // namespace
}  // namespace accelsel::node
