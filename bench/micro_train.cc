// Micro-benchmarks: MetaModel training on N synthetic runs with the server trainer's options (one XGBoost
// thread per booster, two boosters at once, the full catalogue; BENCH_TRAIN_THREADS overrides the two),
// reporting peak RSS (getrusage ru_maxrss, process-wide high-water mark: run the largest size in its own
// process, e.g. --benchmark_filter=BM_Train/1000000). BM_TrainCapped is the same after the trainer's row cap
// (model/row_cap.h), timed together; BM_ChooseCappedRows is the cap alone, on keys, up to 10M runs.
// BENCH_TRAIN_EVAL=1 adds held-out quality (MAPE, top-1; untimed) so a capped and an uncapped model can be compared.
// BM_RetrainFromStore is a whole retrain from a RocksDB store, read as the server's trainer reads it; BM_ScanStore
// one scan of that store in time order and in the store's own order.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/synthetic.h"
#include "model/meta_model.h"
#include "model/row_cap.h"
#include "proto/convert.h"
#include "server/model_manager.h"
#include "server/training_set.h"
#include "storage/telemetry_store.h"
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

// The process's peak resident set so far (getrusage ru_maxrss), in MB.
double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

void AddCounters(benchmark::State& state, const model::MetaModel* m, size_t n, size_t contexts, size_t rows,
                 double input_rss_mb) {
  state.counters["peak_rss_mb"] = PeakRssMb();
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
// The server's store options for a store at `dir` (the summaries its trainer reads, server/training_set.h).
storage::StoreOptions ServerStoreOptions(const std::string& dir) {
  storage::StoreOptions options;
  options.path = dir;
  server::UseTrainingSummaries(&options);
  return options;
}

// Fills a store at `dir` with `n` runs over `contexts` pooled contexts, 32 strategies and 200 nodes, one run per
// millisecond, then marks it filled. Called in a child process.
bool FillStore(const std::string& dir, size_t n, size_t contexts) {
  storage::StoreOptions options = ServerStoreOptions(dir);
  options.sync_writes = false;
  auto store = storage::TelemetryStore::Open(options);
  if (!store.ok()) return false;
  std::mt19937_64 rng(11);
  v1::TaskContext ctx;
  std::vector<v1::RunReport> batch(10000);
  std::vector<const v1::RunReport*> pointers;
  for (size_t begin = 0; begin < n; begin += batch.size()) {
    pointers.clear();
    for (size_t i = begin; i < std::min(n, begin + batch.size()); ++i) {
      v1::RunReport& r = batch[i - begin];
      PooledContext(rng() % contexts, contexts, &ctx);
      SyntheticRun(ctx, static_cast<int>(rng() % 32), rng, &r);
      // Ids in no relation to time, as a network's run ids are (a bijective hash of the index): a time-ordered read
      // then looks runs up all over the store, as it would in a real one.
      r.set_run_id(absl::StrCat("r", absl::Hex(uint64_t{i} * 0x9E3779B97F4A7C15ULL, absl::kZeroPad16)));
      r.set_node_id(absl::StrCat("node-", rng() % 200));
      r.set_time_unix_ms(1700000000000 + static_cast<int64_t>(i));
      pointers.push_back(&r);
    }
    if (!(*store)->AppendRuns(pointers).ok()) return false;
  }
  if (!(*store)->Flush().ok()) return false;
  store->reset();
  std::ofstream(dir + "/FILLED") << n << "\n";
  return true;
}

// The store of `n` runs over `contexts` contexts in ACCELSEL_BENCH_TMPDIR (default /tmp), opened with the server's
// defaults. A child process fills it the first time (its memory is not in this process's peak); later runs reuse it.
std::unique_ptr<storage::TelemetryStore> OpenFilledStore(benchmark::State& state, size_t n, size_t contexts) {
  const char* base = std::getenv("ACCELSEL_BENCH_TMPDIR");
  const std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/accelsel-bench-store-", n, "-", contexts);
  if (!std::filesystem::exists(dir + "/FILLED")) {
    std::filesystem::remove_all(dir);
    const pid_t pid = fork();
    if (pid == 0) _exit(FillStore(dir, n, contexts) ? 0 : 1);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError(absl::StrCat("filling ", dir, " failed").c_str());
      return nullptr;
    }
  }
  // A store filled by a build before the summaries gets them here, once.
  auto store = storage::TelemetryStore::Open(ServerStoreOptions(dir));
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return nullptr;
  }
  return *std::move(store);
}

// One scan of every run of a stored N (args: runs, contexts, order): order 1 in time order (ScanRuns, the time index
// and a lookup per run), 0 in the store's own order (ScanRunsUnordered, the trainer's two passes). Parsing only: what
// the trainer's first pass pays before its own work on each run.
void BM_ScanStore(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::unique_ptr<storage::TelemetryStore> store = OpenFilledStore(state, n, static_cast<size_t>(state.range(1)));
  if (store == nullptr) return;
  size_t seen = 0;
  for (auto _ : state) {
    seen = 0;
    const auto count = [&](const v1::RunReport& r) {
      seen += r.run_id().empty() ? 0 : 1;
      return true;
    };
    const absl::Status status =
        state.range(2) == 1 ? store->ScanRuns(0, count) : store->ScanRunsUnordered(nullptr, count);
    if (!status.ok() || seen != n) {
      state.SkipWithError(absl::StrCat("scan: ", status.ToString(), ", ", seen, " runs").c_str());
      return;
    }
  }
  state.counters["us_per_run"] = benchmark::Counter(
      static_cast<double>(n) * 1e-6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// A whole retrain from a store of N runs (args: runs, contexts, cap) as the server's trainer does it: the two-pass
// read (server/training_set.h) with the server's held-out split and cap (both sides together, each its share),
// training, and scoring on the held-out runs. One size per process, as BM_Train.
void BM_RetrainFromStore(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const size_t contexts = static_cast<size_t>(state.range(1));
  const size_t cap = static_cast<size_t>(state.range(2));
  std::unique_ptr<storage::TelemetryStore> store = OpenFilledStore(state, n, contexts);
  if (store == nullptr) return;
  const double input_rss_mb = CurrentRssMb();
  const model::TrainOptions to = BenchTrainOptions();
  server::TrainingSetOptions read;
  read.in_holdout = &server::ModelManager::InHoldoutKey;
  read.max_rows = cap;
  read.scan_threads = static_cast<size_t>(std::max(1, to.threads));  // as the server reads
  std::unique_ptr<model::MetaModel> model;
  size_t rows = 0, holdout_rows = 0;
  double read_s = 0;
  model::HoldoutMetrics scores;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<server::TrainingSet> set = server::ReadTrainingSet(*store, read);
    read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!set.ok()) {
      state.SkipWithError(std::string(set.status().message()).c_str());
      return;
    }
    auto m = model::MetaModel::Train(set->train, to);
    if (!m.ok()) {
      state.SkipWithError(std::string(m.status().message()).c_str());
      return;
    }
    scores = (*m)->Evaluate(set->holdout);
    rows = set->train.size();
    holdout_rows = set->holdout.size();
    model = *std::move(m);
  }
  state.counters["read_s"] = read_s;
  state.counters["holdout_rows"] = static_cast<double>(holdout_rows);
  state.counters["store_holdout_top1"] = scores.top1;
  state.counters["store_holdout_mape"] = scores.mape;
  AddCounters(state, model.get(), n, contexts, rows, input_rss_mb);
}

// The trainer's two-pass read alone (server/training_set.h, args: runs, contexts, cap, threads), as BM_RetrainFromStore
// reads: its us_per_run against BM_ScanStore's store-order scan of the same store is what choosing the rows adds to
// parsing them.
void BM_ReadTrainingSet(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::unique_ptr<storage::TelemetryStore> store = OpenFilledStore(state, n, static_cast<size_t>(state.range(1)));
  if (store == nullptr) return;
  server::TrainingSetOptions read;
  read.in_holdout = &server::ModelManager::InHoldoutKey;
  read.max_rows = static_cast<size_t>(state.range(2));
  read.scan_threads = static_cast<size_t>(state.range(3));
  size_t rows = 0;
  for (auto _ : state) {
    absl::StatusOr<server::TrainingSet> set = server::ReadTrainingSet(*store, read);
    if (!set.ok() || set->scanned != n) {
      state.SkipWithError(absl::StrCat("read: ", set.status().ToString()).c_str());
      return;
    }
    rows = set->train.size() + set->holdout.size();
  }
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["us_per_run"] = benchmark::Counter(
      static_cast<double>(n) * 1e-6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["peak_rss_mb"] = PeakRssMb();
}

// Each size once: wall time (the bar is a retrain's duration) and the whole process's CPU time (the boosters run on
// their own threads).
void OnceInSeconds(benchmark::internal::Benchmark* b) {
  b->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime()->MeasureProcessCPUTime();
}
BENCHMARK(BM_Train)->Arg(10000)->Arg(100000)->Arg(1000000)->Apply(OnceInSeconds);
// Below the cap (nothing dropped), 5 x and 10 x over it: the cost should stay that of the cap's 200k rows. 2M runs
// also at a 1M cap and with none (0; BM_Train's sizes stop at 1M), the uncapped reference.
BENCHMARK(BM_TrainCapped)
    ->Args({100000, 200000})
    ->Args({1000000, 200000})
    ->Args({2000000, 200000})
    ->Args({2000000, 1000000})
    ->Args({2000000, 0})
    ->Apply(OnceInSeconds);
// The same 20,000 contexts reported ten times as long: with the default cap, 10M stored runs should cost what 1M do.
// The read alone also on one thread and on two (the server's default --trainer_threads).
BENCHMARK(BM_RetrainFromStore)->Args({1000000, 20000, 1000000})->Args({10000000, 20000, 1000000})->Apply(OnceInSeconds);
BENCHMARK(BM_ReadTrainingSet)->ArgsProduct({{1000000, 10000000}, {20000}, {1000000}, {1, 2}})->Apply(OnceInSeconds);
BENCHMARK(BM_ScanStore)
    ->Args({1000000, 20000, 1})
    ->Args({1000000, 20000, 0})
    ->Args({10000000, 20000, 1})
    ->Args({10000000, 20000, 0})
    ->Apply(OnceInSeconds);
BENCHMARK(BM_ChooseCappedRows)->Args({1000000, 200000})->Args({10000000, 1000000})->Apply(OnceInSeconds);

}  // namespace
}  // namespace accelsel::bench
