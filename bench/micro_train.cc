// Micro-benchmarks: MetaModel training on N synthetic runs with the server trainer's options (one XGBoost
// thread per booster, two boosters at once, the full catalogue; BENCH_TRAIN_THREADS overrides the two),
// reporting peak RSS (getrusage ru_maxrss, process-wide high-water mark: run the largest size in its own
// process, e.g. --benchmark_filter=BM_Train/1000000). BM_TrainCapped is the same after the trainer's row cap
// (model/row_cap.h), timed together; BM_ChooseCappedRows is the cap alone, on keys, up to 10M runs.
// BENCH_TRAIN_EVAL=1 adds held-out quality (MAPE, top-1; untimed) so a capped and an uncapped model can be compared.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/synthetic.h"
#include "model/meta_model.h"
#include "model/row_cap.h"
#include "proto/convert.h"
#include "util/hash.h"

namespace accelsel::bench {
namespace {

// The server trainer's options (server/model_manager.cc), with the budgets the environment overrides.
model::TrainOptions BenchTrainOptions() {
  model::TrainOptions to;
  to.xgb.nthread = 1;  // as server/model_manager.cc: one XGBoost thread per booster, --trainer_threads boosters
  to.threads = 2;      // the server's default --trainer_threads
  if (const char* v = std::getenv("BENCH_TRAIN_THREADS")) to.threads = std::atoi(v);
  to.catalog = SyntheticModelStrategies(32);
  // Budgets other than the defaults, for the growth write-up (docs/BENCHMARKS.md, "Training cost").
  if (const char* v = std::getenv("BENCH_TRAIN_FIT_ROWS")) to.max_fit_rows = std::strtoull(v, nullptr, 10);
  if (const char* v = std::getenv("BENCH_TRAIN_CALIBRATION_ROWS")) {
    to.calibration_max_rows = std::strtoull(v, nullptr, 10);
  }
  if (const char* v = std::getenv("BENCH_TRAIN_SPARSE")) to.sparse_indicators = std::string(v) == "1";
  // BENCH_TRAIN_RAW=0: without the heads for unseen models / accelerators (TrainOptions::raw_heads_for_novel).
  if (const char* v = std::getenv("BENCH_TRAIN_RAW")) to.raw_heads_for_novel = std::string(v) != "0";
  return to;
}

// This process's resident set now, MB (the input's share of the peak).
double CurrentRssMb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// 2,000 contexts of the training pool, every strategy run once in each: MAPE and top-1 on contexts that the training
// runs cover (the model is judged where it was taught, capped or not).
std::vector<model::RunRecord> HoldoutRecords(size_t contexts, int k) {
  std::mt19937_64 rng(77);
  std::vector<model::RunRecord> out;
  v1::TaskContext ctx;
  v1::RunReport report;
  for (uint64_t c = 0; c < 2000; ++c) {
    PooledContext(c * 7919 % contexts, contexts, &ctx);
    for (int s = 0; s < k; ++s) {
      SyntheticRun(ctx, s, rng, &report);
      report.set_run_id(absl::StrCat("h", c, "-", s));
      out.push_back(FromProto(report));
    }
  }
  return out;
}

void AddCounters(benchmark::State& state, const model::MetaModel* m, size_t n, size_t contexts, size_t rows,
                 double input_rss_mb) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  state.counters["peak_rss_mb"] = ru.ru_maxrss / 1024.0;
  state.counters["input_rss_mb"] = input_rss_mb;  // the generated runs, held before training starts
  state.counters["runs"] = static_cast<double>(n);
  state.counters["rows"] = static_cast<double>(rows);  // what the model trained on
  const char* eval = std::getenv("BENCH_TRAIN_EVAL");
  if (m == nullptr || eval == nullptr || std::string(eval) != "1") return;
  const model::HoldoutMetrics h = m->Evaluate(HoldoutRecords(contexts, 32));
  state.counters["holdout_mape"] = h.mape;
  state.counters["holdout_top1"] = h.top1;
}

void BM_Train(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const size_t contexts = std::max<size_t>(n / 5, 1);
  const auto runs = SyntheticRecords(n, contexts, 32, 11);
  const double input_rss_mb = CurrentRssMb();
  const model::TrainOptions to = BenchTrainOptions();
  std::unique_ptr<model::MetaModel> model;
  for (auto _ : state) {
    auto m = model::MetaModel::Train(runs, to);
    if (!m.ok()) state.SkipWithError(std::string(m.status().message()).c_str());
    benchmark::DoNotOptimize(m);
    if (m.ok()) model = *std::move(m);
  }
  AddCounters(state, model.get(), n, contexts, n, input_rss_mb);
}

// The row cap, then training on what it kept: a retrain's cost with --max_training_rows (args: runs, cap). Runs once:
// the cap consumes the generated runs.
void BM_TrainCapped(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const size_t cap = static_cast<size_t>(state.range(1));
  const size_t contexts = std::max<size_t>(n / 5, 1);
  auto runs = SyntheticRecords(n, contexts, 32, 11);
  const double input_rss_mb = CurrentRssMb();
  const model::TrainOptions to = BenchTrainOptions();
  std::unique_ptr<model::MetaModel> model;
  double cap_s = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    model::CapTrainingRows(&runs, cap);
    cap_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto m = model::MetaModel::Train(runs, to);
    if (!m.ok()) state.SkipWithError(std::string(m.status().message()).c_str());
    benchmark::DoNotOptimize(m);
    if (m.ok()) model = *std::move(m);
  }
  state.counters["cap_s"] = cap_s;
  AddCounters(state, model.get(), n, contexts, runs.size(), input_rss_mb);
}

// The cap's own cost on keys alone (no RunRecords: 10M of them would not fit a small machine), shaped like the
// training benchmark: N/5 contexts, 32 strategies, one run per millisecond. Args: runs, cap.
void BM_ChooseCappedRows(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const size_t cap = static_cast<size_t>(state.range(1));
  const size_t contexts = std::max<size_t>(n / 5, 1);
  std::mt19937_64 rng(11);
  std::vector<model::RowCapKey> keys(n);
  for (size_t i = 0; i < n; ++i) {
    keys[i] = model::RowCapKey{.context = util::StableHash(absl::StrCat(rng() % contexts)),
                               .strategy = util::StableHash(SyntheticStrategyId(static_cast<int>(rng() % 32))),
                               .node = util::StableHash("bench-node"),
                               .time_unix_ms = 1700000000000 + static_cast<int64_t>(i),
                               .run = util::StableHash(absl::StrCat("r", i))};
  }
  const double input_rss_mb = CurrentRssMb();
  size_t kept = 0;
  for (auto _ : state) {
    const std::vector<bool> keep = model::ChooseCappedRows(keys, cap);
    kept = static_cast<size_t>(std::count(keep.begin(), keep.end(), true));
  }
  AddCounters(state, nullptr, n, contexts, kept, input_rss_mb);
}
// Wall time (the bar is a retrain's duration) and the whole process's CPU time (the boosters run on their own
// threads).
BENCHMARK(BM_Train)
    ->Arg(10000)
    ->Arg(100000)
    ->Arg(1000000)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();
// Below the cap (nothing dropped), 5 x and 10 x over it: the cost should stay that of the cap's 200k rows. 2M runs
// also at a 1M cap and with none (0; BM_Train's sizes stop at 1M), the uncapped reference.
BENCHMARK(BM_TrainCapped)
    ->Args({100000, 200000})
    ->Args({1000000, 200000})
    ->Args({2000000, 200000})
    ->Args({2000000, 1000000})
    ->Args({2000000, 0})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();
BENCHMARK(BM_ChooseCappedRows)
    ->Args({1000000, 200000})
    ->Args({10000000, 1000000})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

}  // namespace
}  // namespace accelsel::bench
