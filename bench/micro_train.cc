// Micro-benchmarks: MetaModel training on N synthetic runs with the server trainer's options (one XGBoost
// thread per booster, two boosters at once, the full catalogue; BENCH_TRAIN_THREADS overrides the two),
// reporting peak RSS (getrusage ru_maxrss, process-wide high-water mark: run the largest size in its own
// process, e.g. --benchmark_filter=BM_Train/1000000).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdlib>
#include <string>

#include "bench/synthetic.h"
#include "model/meta_model.h"

namespace accelsel::bench {
namespace {

void BM_Train(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const auto runs = SyntheticRecords(n, std::max<size_t>(n / 5, 1), 32, 11);
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
  for (auto _ : state) {
    auto m = model::MetaModel::Train(runs, to);
    if (!m.ok()) state.SkipWithError(std::string(m.status().message()).c_str());
    benchmark::DoNotOptimize(m);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  state.counters["peak_rss_mb"] = ru.ru_maxrss / 1024.0;
  state.counters["rows"] = static_cast<double>(n);
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

}  // namespace
}  // namespace accelsel::bench
