// Micro-benchmarks: ranking K candidates with a trained MetaModel through model::Selector, beside the raw
// XGBoost predictions of the same rows (the floor: the same boosters' work called straight through the C API).
#include <benchmark/benchmark.h>
#include <xgboost/c_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>

#include "absl/strings/str_format.h"
#include "bench/synthetic.h"
#include "model/features.h"
#include "model/meta_model.h"
#include "model/observed_stats.h"
#include "model/selector.h"
#include "model/xgb.h"
#include "proto/convert.h"

namespace accelsel::bench {
namespace {

constexpr int kCatalog = 128;
constexpr size_t kTrainRuns = 10000;  // enough for full-depth trees; predict cost depends on trees, not rows

// Raw C-API booster loaded from XgbBooster bytes; predicts without the wrapper's mutex and strings.
class RawBooster {
 public:
  explicit RawBooster(const model::XgbBooster& b) : cols_(b.cols()) {
    auto bytes = b.Save();
    XGBoosterCreate(nullptr, 0, &h_);
    XGBoosterLoadModelFromBuffer(h_, bytes->data(), bytes->size());
    XGBoosterSetParam(h_, "nthread", "1");
  }
  ~RawBooster() { XGBoosterFree(h_); }
  const float* Predict(const float* x, size_t rows) const {
    char array[160];
    std::snprintf(array, sizeof(array), R"({"data":[%llu,true],"shape":[%zu,%zu],"typestr":"<f4","version":3})",
                  static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(x)), rows, cols_);
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    XGBoosterPredictFromDense(h_, array,
                              R"({"type":0,"training":false,"iteration_begin":0,"iteration_end":0,)"
                              R"("strict_shape":false,"missing":NaN,"cache_id":0})",
                              nullptr, &shape, &dim, &result);
    return result;
  }

 private:
  BoosterHandle h_ = nullptr;
  size_t cols_;
};

struct Fixture {
  std::vector<model::Strategy> strategies;
  std::unique_ptr<model::MetaModel> model;
  model::ObservedStats stats;
  // The boosters MetaModel::Predict runs for the e2e objective on this data: the e2e head (log latency
  // regression, same params) and the failure classifier (logistic, 100 rounds), trained here on the same rows.
  std::unique_ptr<model::XgbBooster> e2e, failure;
};

Fixture& Get() {
  static Fixture* f = [] {
    auto* f = new Fixture();
    f->strategies = SyntheticModelStrategies(kCatalog);
    const auto runs = SyntheticRecords(kTrainRuns, kTrainRuns / 5, kCatalog, 1);
    for (const auto& r : runs) f->stats.Add(r);
    model::TrainOptions to;
    to.xgb.nthread = 1;  // as the server's trainer
    to.catalog = f->strategies;
    auto m = model::MetaModel::Train(runs, to);
    if (!m.ok()) {
      std::fprintf(stderr, "train: %s\n", std::string(m.status().message()).c_str());
      std::abort();
    }
    f->model = *std::move(m);
    const size_t cols = model::ContextFeatureWidth() + model::StrategyFeatureWidth();
    std::vector<float> x, y_e2e, y_fail, x_ok;
    std::vector<float> row;
    for (const auto& r : runs) {
      row.clear();
      model::EncodeContext(r.context, &row);
      model::Strategy s = f->strategies[std::stoi(r.strategy_id.substr(4))];
      model::EncodeStrategy(s, &row);
      x.insert(x.end(), row.begin(), row.end());
      y_fail.push_back(model::IsFailure(r.status) ? 1.f : 0.f);
      if (!model::IsFailure(r.status)) {
        x_ok.insert(x_ok.end(), row.begin(), row.end());
        y_e2e.push_back(static_cast<float>(std::log(r.metrics.e2e_latency_ms)));
      }
    }
    model::XgbParams p = to.xgb;
    f->e2e = *model::XgbBooster::Train(x_ok, y_e2e.size(), cols, y_e2e, {}, {}, p);
    p.objective = "binary:logistic";
    p.num_rounds = 100;
    f->failure = *model::XgbBooster::Train(x, runs.size(), cols, y_fail, {}, {}, p);
    return f;
  }();
  return *f;
}

model::TaskContext QueryContext(uint64_t i) {
  v1::TaskContext c;
  SyntheticContext(i * 7919 + 3, &c);  // shapes not in the training pool
  return FromProto(c);
}

// Full ranking: MetaModel::Predict (encoding + boosters) + observed-stats lookups + constraints + sort.
void BM_SelectorRank(benchmark::State& state) {
  Fixture& f = Get();
  const int k = static_cast<int>(state.range(0));
  model::Selector selector(model::SelectorOptions{.exploration_rate = 0.05, .interval_coverage = 0.8});
  std::mt19937_64 rng(1);
  std::vector<model::TaskContext> contexts;
  for (int i = 0; i < 64; ++i) contexts.push_back(QueryContext(i));
  model::SelectQuery q;
  for (int i = 0; i < k; ++i) q.candidates.push_back(&f.strategies[i]);
  size_t i = 0;
  for (auto _ : state) {
    q.context = &contexts[i++ % contexts.size()];
    auto recs = selector.Select(q, f.stats, f.model.get(), rng);
    benchmark::DoNotOptimize(recs.data());
  }
  state.SetItemsProcessed(state.iterations() * k);
}
BENCHMARK(BM_SelectorRank)->Arg(8)->Arg(32)->Arg(128);

// MetaModel::Predict alone (encoding + the boosters through XgbBooster).
void BM_MetaModelPredict(benchmark::State& state) {
  Fixture& f = Get();
  const int k = static_cast<int>(state.range(0));
  std::vector<model::TaskContext> contexts;
  for (int i = 0; i < 64; ++i) contexts.push_back(QueryContext(i));
  std::vector<const model::Strategy*> cands;
  for (int i = 0; i < k; ++i) cands.push_back(&f.strategies[i]);
  std::vector<model::Prediction> out;
  size_t i = 0;
  for (auto _ : state) {
    f.model->Predict(contexts[i++ % contexts.size()], cands, model::Objective::kE2eLatency, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * k);
}
BENCHMARK(BM_MetaModelPredict)->Arg(8)->Arg(32)->Arg(128);

// The floor: XGBoosterPredictFromDense on the same K encoded rows, for both boosters the model runs.
void BM_RawXgbPredict(benchmark::State& state) {
  Fixture& f = Get();
  const int k = static_cast<int>(state.range(0));
  std::vector<std::vector<float>> blocks;
  for (int c = 0; c < 64; ++c) {
    std::vector<float> x;
    const model::TaskContext ctx = QueryContext(c);
    for (int i = 0; i < k; ++i) {
      model::EncodeContext(ctx, &x);
      model::EncodeStrategy(f.strategies[i], &x);
    }
    blocks.push_back(std::move(x));
  }
  // One handle per benchmark thread: a BoosterHandle's prediction buffer is not shareable between threads.
  const RawBooster raw_e2e(*f.e2e), raw_failure(*f.failure);
  size_t i = 0;
  for (auto _ : state) {
    const auto& x = blocks[i++ % blocks.size()];
    benchmark::DoNotOptimize(raw_e2e.Predict(x.data(), k));
    benchmark::DoNotOptimize(raw_failure.Predict(x.data(), k));
  }
  state.SetItemsProcessed(state.iterations() * k);
}
BENCHMARK(BM_RawXgbPredict)->Arg(8)->Arg(32)->Arg(128);

// Concurrency probe: the same ranking from 2 threads (XgbBooster::Predict holds a mutex per booster).
BENCHMARK(BM_SelectorRank)->Arg(32)->Threads(2)->UseRealTime();
BENCHMARK(BM_RawXgbPredict)->Arg(32)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace accelsel::bench
