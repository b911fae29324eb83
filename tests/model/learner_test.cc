// Learners on synthetic data whose answer is known: strategy A is faster for small batches, B for large ones
// (crossover at batch 40); intervals cover fresh noisy data at about their nominal rate.
#include "model/learner.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util/crossover_dataset.h"

namespace accelsel::model {
namespace {

using testing_util::ExpectSwitchNear40;
using testing_util::MakeCrossoverDataset;
using testing_util::Pick;

TEST(LearnerTest, XgbRegressionSwitchesAtTheCrossover) {
  XgbLearner l(XgbLearnerOptions{});
  ASSERT_TRUE(l.Fit(MakeCrossoverDataset(400, 0.05, 1)).ok());
  ExpectSwitchNear40(l);
}

TEST(LearnerTest, XgbPairwiseSwitchesAtTheCrossover) {
  XgbLearnerOptions o;
  o.mode = XgbLearnerOptions::Mode::kPairwise;
  XgbLearner l(o);
  ASSERT_TRUE(l.Fit(MakeCrossoverDataset(400, 0.05, 2)).ok());
  ExpectSwitchNear40(l);
}

TEST(LearnerTest, IntervalsCoverFreshDataAtAboutNominalRate) {
  XgbLearnerOptions o;
  o.coverage = 0.8;
  o.interval_folds = 3;
  XgbLearner l(o);
  ASSERT_TRUE(l.Fit(MakeCrossoverDataset(600, 0.2, 5)).ok());
  const Dataset fresh = MakeCrossoverDataset(500, 0.2, 6);
  int covered = 0, n = 0;
  std::vector<LogPrediction> out;
  for (const auto& r : fresh.rows) {
    ASSERT_TRUE(l.Predict(fresh.task(r.task), {{0, fresh.strat(r.strat)}}, &out).ok());
    ASSERT_LT(out[0].lo, out[0].hi);
    covered += r.y >= out[0].lo && r.y <= out[0].hi;
    ++n;
  }
  const double coverage = static_cast<double>(covered) / n;
  EXPECT_GT(coverage, 0.74) << coverage;
  EXPECT_LT(coverage, 0.88) << coverage;
}

TEST(LearnerTest, SerializedXgbLearnerPredictsTheSame) {
  XgbLearner l(XgbLearnerOptions{});
  ASSERT_TRUE(l.Fit(MakeCrossoverDataset(200, 0.05, 7)).ok());
  auto bytes = l.Serialize();
  ASSERT_TRUE(bytes.ok());
  auto copy = XgbLearner::Deserialize(*bytes);
  ASSERT_TRUE(copy.ok()) << copy.status();
  const float task[2] = {2.0f, 0.3f}, a[2] = {1, 0};
  std::vector<LogPrediction> p1, p2;
  ASSERT_TRUE(l.Predict(task, {{0, a}}, &p1).ok());
  ASSERT_TRUE((*copy)->Predict(task, {{0, a}}, &p2).ok());
  EXPECT_DOUBLE_EQ(p1[0].mean, p2[0].mean);
  EXPECT_DOUBLE_EQ(p1[0].lo, p2[0].lo);
  EXPECT_FALSE(XgbLearner::Deserialize(bytes->substr(0, bytes->size() / 2)).ok());
}

TEST(LearnerTest, CompiledForestMatchesXgboost) {
  const Dataset d = MakeCrossoverDataset(300, 0.1, 8);
  std::vector<float> x, y;
  for (const auto& r : d.rows) {
    x.insert(x.end(), d.task(r.task), d.task(r.task) + 2);
    x.insert(x.end(), d.strat(r.strat), d.strat(r.strat) + 2);
    y.push_back(r.y);
  }
  x[5] = std::nanf("");  // a missing value takes the default branch in both
  for (const char* objective : {"reg:squarederror", "binary:logistic"}) {
    XgbParams p;
    p.objective = objective;
    std::vector<float> labels = y;
    if (p.objective == "binary:logistic") {
      for (float& v : labels) v = v > 3.5f ? 1.0f : 0.0f;
    }
    auto b = XgbBooster::Train(x, y.size(), 4, labels, {}, {}, p);
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_TRUE((*b)->compiled()) << objective;
    std::vector<float> ours, theirs;
    ASSERT_TRUE((*b)->Predict(x.data(), y.size(), &ours).ok());
    ASSERT_TRUE((*b)->PredictWithXgboost(x.data(), y.size(), &theirs).ok());
    ASSERT_EQ(ours.size(), theirs.size());
    for (size_t i = 0; i < ours.size(); ++i) ASSERT_NEAR(ours[i], theirs[i], 1e-4) << objective << " row " << i;
  }
}

// A hand-written model whose node numbering is not breadth-first (children listed before their siblings' ids,
// an unbalanced tree), with default directions both ways and a split on a column the input does not have: the
// compiled forest must walk it exactly as the tree says.
TEST(LearnerTest, CompiledForestFollowsAnyNodeNumberingAndMissingColumns) {
  // Tree 0:  node 0: x0 < 1 (missing -> right) ? node 4 : node 1
  //          node 1: x1 < 2 (missing -> left)  ? node 2 (leaf 10) : node 3 (leaf 20)
  //          node 4: x5 < 0 (missing -> right) ? node 6 (leaf 30) : node 5 (leaf 40)   (column 5 never exists)
  // Tree 1:  a single leaf, 0.5.
  const std::string json = R"({"learner":{
    "learner_model_param":{"base_score":"1.0","num_class":"0","num_target":"1"},
    "objective":{"name":"reg:squarederror"},
    "gradient_booster":{"name":"gbtree","model":{"trees":[
      {"left_children":[4,2,-1,-1,6,-1,-1],"right_children":[1,3,-1,-1,5,-1,-1],
       "split_indices":[0,1,0,0,5,0,0],"split_conditions":[1,2,10,20,0,40,30],
       "default_left":[0,1,0,0,0,0,0]},
      {"left_children":[-1],"right_children":[-1],"split_indices":[0],"split_conditions":[0.5],
       "default_left":[0]}]}}}})";
  auto f = CompileForest(json);
  ASSERT_TRUE(f.ok()) << f.status();
  const float nan = std::nanf("");
  const std::vector<float> x = {0,   0,    // x0 < 1 -> node 4 -> x5 missing -> right -> node 5: 40
                                5,   1,    // x0 >= 1 -> node 1 -> x1 < 2 -> leaf 10
                                5,   3,    // -> node 1 -> x1 >= 2 -> leaf 20
                                5,   nan,  // -> node 1 -> missing goes left -> leaf 10
                                nan, 3};   // x0 missing goes right -> node 1 -> leaf 20
  std::vector<float> out;
  f->Predict(x.data(), 5, 2, &out);
  const std::vector<float> want = {41.5f, 11.5f, 21.5f, 11.5f, 21.5f};  // + tree 1's 0.5 + base 1
  ASSERT_EQ(out.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(out[i], want[i]) << "row " << i;
  // A child index pointing back up (a cycle) is refused rather than walked.
  std::string cyclic = json;
  cyclic.replace(cyclic.find("[4,2,-1,-1,6,-1,-1]"), 19, "[4,0,-1,-1,6,-1,-1]");
  EXPECT_FALSE(CompileForest(cyclic).ok());
}

// Indicator columns trained with their zeros as missing: the rewritten trees answer on plain 0/1 input exactly as
// XGBoost does, and the indicator's effect is learned (it is the whole signal here).
TEST(LearnerTest, ZerosAsMissingTreesPredictOnPlainIndicators) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(0, 1);
  const size_t rows = 2000, cols = 3;
  std::vector<float> x(rows * cols), y(rows);
  for (size_t i = 0; i < rows; ++i) {
    x[i * cols] = u(rng) < 0.3f ? 1.0f : 0.0f;      // indicator A: +3
    x[i * cols + 1] = u(rng) < 0.5f ? 1.0f : 0.0f;  // indicator B: -1
    x[i * cols + 2] = u(rng);                       // numeric noise
    y[i] = 3.0f * x[i * cols] - x[i * cols + 1] + 0.1f * x[i * cols + 2];
  }
  const XgbBooster::RowBlockFn fill = [&](size_t begin, size_t end, float* out) {
    std::copy(x.begin() + begin * cols, x.begin() + end * cols, out);
  };
  XgbParams p;
  p.colsample_bytree = p.colsample_bynode = 1.0;
  auto b = XgbBooster::TrainFromBlocks(fill, rows, cols, y, {}, p, {true, true, false});
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*b)->compiled());
  std::vector<float> ours, theirs;
  ASSERT_TRUE((*b)->Predict(x.data(), rows, &ours).ok());
  ASSERT_TRUE((*b)->PredictWithXgboost(x.data(), rows, &theirs).ok());
  double max_err = 0;
  for (size_t i = 0; i < rows; ++i) {
    ASSERT_NEAR(ours[i], theirs[i], 1e-4) << "row " << i;
    max_err = std::max(max_err, std::abs(double{ours[i]} - y[i]));
  }
  EXPECT_LT(max_err, 0.2);
  // And the rewrite itself: a split on a flagged column becomes `x < 0.5` with 0 on the side missing took.
  const std::string tree =
      R"({"learner":{"gradient_booster":{"model":{"trees":[{"left_children":[1,-1,-1],"right_children":[2,-1,-1],)"
      R"("split_indices":[0,0,0],"split_conditions":[2.0,-1.0,1.0],"default_left":[false,false,false]}]}}}})";
  auto rewritten = RouteZerosAsMissing(tree, {true});
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  // 1 < 2 went left (leaf -1), missing went right (leaf 1): the leaves trade places and the split tests x < 0.5.
  EXPECT_NE(rewritten->find(R"("split_conditions":[0.5,1.0,-1.0])"), std::string::npos) << *rewritten;
  EXPECT_NE(rewritten->find(R"("left_children":[1,-1,-1])"), std::string::npos) << *rewritten;
}

TEST(LearnerTest, QuantileInterpolates) {
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(Quantile(&v, 0.0), 1);
  EXPECT_DOUBLE_EQ(Quantile(&v, 1.0), 4);
  EXPECT_DOUBLE_EQ(Quantile(&v, 0.5), 2.5);
}

// Residuals made of a large error per task (shared by its strategies) and a small one per (task, strategy): the
// relative spread is the small one's. Strategies predicted far from the best, with large errors of their own, do
// not decide which is best and do not count; repeated runs of one cell are not mistaken for a comparison.
TEST(LearnerTest, RelativeResidualSdIgnoresTheErrorATaskSharesAndTheFarWorse) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> shared(0, 1.0), own(0, 0.1), far_own(0, 1.0);
  Dataset d;
  std::vector<float> oof;
  for (uint32_t t = 0; t < 200; ++t) {
    const double task_error = shared(rng);
    for (uint32_t s = 0; s < 8; ++s) {
      // Strategies 0-3 compete for first place (predicted 0.1 apart); 4-7 are predicted 2 (e^2 times) worse.
      const double predicted = s < 4 ? 0.1 * s : 2.0 + 0.1 * s;
      const double cell_error = s < 4 ? own(rng) : far_own(rng);
      for (int run = 0; run < 2; ++run) {
        d.rows.push_back({t, s, static_cast<float>(predicted + task_error + cell_error)});
        oof.push_back(static_cast<float>(predicted));
      }
    }
  }
  const double sd = RelativeResidualSd(d, oof, 0.8);
  EXPECT_GT(sd, 0.07);
  EXPECT_LT(sd, 0.13);
  // Missing out-of-fold predictions are skipped.
  oof[0] = std::nanf("");
  EXPECT_NEAR(RelativeResidualSd(d, oof, 0.8), sd, 0.01);
  // One strategy per task: nothing to compare, however many runs.
  Dataset single;
  std::vector<float> single_oof;
  for (uint32_t t = 0; t < 50; ++t) {
    for (int run = 0; run < 3; ++run) {
      single.rows.push_back({t, 0, static_cast<float>(run)});
      single_oof.push_back(0.0f);
    }
  }
  EXPECT_TRUE(std::isnan(RelativeResidualSd(single, single_oof, 0.8)));
}

TEST(LearnerTest, FittedIntervalsCarryARelativeSpreadThatRoundTrips) {
  XgbLearnerOptions o;
  o.interval_folds = 3;
  XgbLearner l(o);
  ASSERT_TRUE(l.Fit(MakeCrossoverDataset(400, 0.2, 9)).ok());
  ASSERT_TRUE(std::isfinite(l.relative_sd()));
  EXPECT_GT(l.relative_sd(), 0);
  auto bytes = l.Serialize();
  ASSERT_TRUE(bytes.ok());
  auto copy = XgbLearner::Deserialize(*bytes);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_DOUBLE_EQ((*copy)->relative_sd(), l.relative_sd());
  // A section written before the relative spread existed ends after the booster: read, without it.
  auto old = XgbLearner::Deserialize(bytes->substr(0, bytes->size() - sizeof(double)));
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_TRUE(std::isnan((*old)->relative_sd()));
}

}  // namespace
}  // namespace accelsel::model
