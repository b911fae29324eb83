// Micro-benchmarks: feature encoding and the proto -> record conversion that precede every prediction.
#include <benchmark/benchmark.h>

#include "bench/synthetic.h"
#include "model/features.h"
#include "proto/convert.h"

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
