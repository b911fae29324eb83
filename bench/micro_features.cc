// Micro-benchmarks: feature encoding and the proto -> record conversion that precede every prediction.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "bench/synthetic.h"
#include "model/features.h"
#include "proto/convert.h"
#include "server/training_set.h"

namespace accelsel::bench {
namespace {

void BM_ContextFromProto(benchmark::State& state) {
  v1::TaskContext c;
  SyntheticContext(12345, &c);
  for (auto _ : state) {
    model::TaskContext m = FromProto(c);
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_ContextFromProto);

// What the store makes of each run it stores for the trainer (server/training_set.h): the context's two keys and two
// hashes.
void BM_TrainingSummary(benchmark::State& state) {
  v1::RunReport r;
  std::mt19937_64 rng(7);
  v1::TaskContext c;
  SyntheticContext(12345, &c);
  SyntheticRun(c, 3, rng, &r);
  r.set_node_id("node-17");
  for (auto _ : state) {
    std::string summary = server::TrainingSummaryOf(r);
    benchmark::DoNotOptimize(summary);
  }
}
BENCHMARK(BM_TrainingSummary);

void BM_EncodeContext(benchmark::State& state) {
  v1::TaskContext c;
  SyntheticContext(12345, &c);
  const model::TaskContext m = FromProto(c);
  std::vector<float> out;
  for (auto _ : state) {
    out.clear();
    model::EncodeContext(m, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["width"] = static_cast<double>(model::ContextFeatureWidth());
}
BENCHMARK(BM_EncodeContext);

void BM_EncodeStrategy(benchmark::State& state) {
  const model::Strategy s = FromProto(SyntheticStrategy(87));
  std::vector<float> out;
  for (auto _ : state) {
    out.clear();
    model::EncodeStrategy(s, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["width"] = static_cast<double>(model::StrategyFeatureWidth());
}
BENCHMARK(BM_EncodeStrategy);

}  // namespace
}  // namespace accelsel::bench
