// The baselines on the synthetic crossover problem (tests/test_util/crossover_dataset.h): kNN finds the
// crossover, SBS picks one strategy everywhere.
#include "eval/baselines.h"

#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util/crossover_dataset.h"

namespace accelsel::eval {
namespace {

using testing_util::ExpectSwitchNear40;
using testing_util::MakeCrossoverDataset;
using testing_util::Pick;

TEST(BaselinesTest, KnnSwitchesAtTheCrossover) {
  KnnLearner l(5, Aggregate::kLogRegret);
  Dataset d = MakeCrossoverDataset(400, 0.02, 3);
  // kNN has no feature selection: drop the junk feature's influence by making it constant.
  for (size_t t = 0; t < d.num_tasks(); ++t) d.task_x[t * 2 + 1] = 0.5f;
  ASSERT_TRUE(l.Fit(d).ok());
  ExpectSwitchNear40(l);
}

TEST(BaselinesTest, SbsPicksTheSameStrategyEverywhere) {
  SbsLearner l(Aggregate::kLogRegret);
  ASSERT_TRUE(l.Fit(MakeCrossoverDataset(400, 0.02, 4)).ok());
  const int first = Pick(l, 1);
  for (double batch : {4.0, 40.0, 128.0}) EXPECT_EQ(Pick(l, batch), first);
  // Batches are log-uniform in [1, 128], so A (small batches) wins on most tasks and has the lower mean regret.
  EXPECT_EQ(first, 0);
  // A strategy never seen in training is ranked last.
  const float task[2] = {0, 0}, x[2] = {0, 0};
  std::vector<LogPrediction> out;
  ASSERT_TRUE(l.Predict(task, {{100, x}, {999, x}}, &out).ok());
  EXPECT_GT(out[1].mean, out[0].mean);
}

}  // namespace
}  // namespace accelsel::eval
