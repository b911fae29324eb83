// A synthetic learner problem whose answer is known: strategy A (key 100) is faster for small batches, B (key 200)
// for large ones, crossing at batch 40. Shared by the tests of the product's learners and of the baselines.
#ifndef ACCELSEL_TESTS_TEST_UTIL_CROSSOVER_DATASET_H_
#define ACCELSEL_TESTS_TEST_UTIL_CROSSOVER_DATASET_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "model/learner.h"

namespace accelsel::testing_util {

using model::Dataset;
using model::Learner;
using model::LogPrediction;

// Latency of A = 10 + batch, of B = 40 + 0.25·batch (ms): equal at batch 40.
inline double TrueLatency(int strat, double batch) { return strat == 0 ? 10 + batch : 40 + 0.25 * batch; }

// Task features: log batch plus a noise feature; strategy features: one-hot.
inline Dataset MakeCrossoverDataset(int tasks, double noise_sigma, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> log_batch(0, std::log(128.0));
  std::normal_distribution<double> noise(0, noise_sigma);
  std::uniform_real_distribution<double> junk(0, 1);
  Dataset d;
  d.task_dim = 2;
  d.strat_dim = 2;
  d.strat_x = {1, 0, 0, 1};
  d.strat_key = {100, 200};
  for (int t = 0; t < tasks; ++t) {
    const double lb = log_batch(rng);
    d.task_x.push_back(static_cast<float>(lb));
    d.task_x.push_back(static_cast<float>(junk(rng)));
    for (uint32_t s = 0; s < 2; ++s) {
      d.rows.push_back(
          {static_cast<uint32_t>(t), s, static_cast<float>(std::log(TrueLatency(s, std::exp(lb))) + noise(rng))});
    }
  }
  return d;
}

// Index (0 = A, 1 = B) of the strategy the learner picks at `batch`.
inline int Pick(const Learner& l, double batch) {
  const float task[2] = {static_cast<float>(std::log(batch)), 0.5f};
  const float a[2] = {1, 0}, b[2] = {0, 1};
  std::vector<LogPrediction> out;
  EXPECT_TRUE(l.Predict(task, {{100, a}, {200, b}}, &out).ok());
  return out[1].mean < out[0].mean ? 1 : 0;
}

inline void ExpectSwitchNear40(const Learner& l) {
  for (double batch : {1.0, 4.0, 16.0, 28.0}) EXPECT_EQ(Pick(l, batch), 0) << l.name() << " batch " << batch;
  for (double batch : {56.0, 80.0, 128.0}) EXPECT_EQ(Pick(l, batch), 1) << l.name() << " batch " << batch;
}

}  // namespace accelsel::testing_util

#endif  // ACCELSEL_TESTS_TEST_UTIL_CROSSOVER_DATASET_H_
