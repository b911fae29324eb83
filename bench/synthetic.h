// Synthetic strategies, task contexts and run reports shared by the load generator, the null server and the
// micro-benchmarks, so every tool sees the same catalogue, message sizes and data shape.
#ifndef ACCELSEL_BENCH_SYNTHETIC_H_
#define ACCELSEL_BENCH_SYNTHETIC_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "accelsel/v1/accelsel.pb.h"
#include "model/types.h"

namespace accelsel::bench {

// "syn-000" ... : strategy i of the synthetic catalogue (engine, tp, quant, spec_k components).
std::string SyntheticStrategyId(int i);
v1::Strategy SyntheticStrategy(int i);
std::vector<v1::Strategy> SyntheticStrategies(int k);

// Context number `i`: one of a handful of models and accelerators, with a workload shape (prompt, output, batch)
// that differs for every i below 2^28, so each i is a distinct exact context for the observed statistics.
void SyntheticContext(uint64_t i, v1::TaskContext* out);
// Like SyntheticContext but drawn from a small pool of `pool` shapes (repeating contexts).
void PooledContext(uint64_t i, uint64_t pool, v1::TaskContext* out);

// A plausible run of strategy `strategy` in `context`: roofline-shaped latency with a strategy factor and noise;
// a few percent fail (OOM when the weights cannot fit, random crashes otherwise).
void SyntheticRun(const v1::TaskContext& context, int strategy, std::mt19937_64& rng, v1::RunReport* out);

// `n` plain records over `contexts` distinct contexts and `k` strategies (for training benchmarks).
std::vector<model::RunRecord> SyntheticRecords(size_t n, size_t contexts, int k, uint64_t seed);
std::vector<model::Strategy> SyntheticModelStrategies(int k);

// A SelectAcceleratorResponse with `k` fully populated recommendations, shaped like a real answer.
v1::SelectAcceleratorResponse CannedResponse(int k);

}  // namespace accelsel::bench

#endif  // ACCELSEL_BENCH_SYNTHETIC_H_
