// The promotion rule as a pure policy: the candidate and the serving model scored run by run on the same held-out
// runs, on all of them and on the newest quarter, and on held-out top-1.
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/model_manager.h"

namespace accelsel::server {
namespace {

constexpr size_t kRuns = 400;  // 100 contexts of 4 runs; the last 100 runs are the newest quarter

struct Scores {
  model::HoldoutMetrics candidate, serving;
  std::vector<bool> newest = std::vector<bool>(kRuns, false);
};

// Both models err about 0.2 in log; `older` and `newer` are what the candidate adds to its error on the older and
// the newest runs, `serving_newer` what the serving model adds on the newest.
Scores Make(double older, double newer, double serving_newer = 0) {
  Scores s;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 0.02);
  for (auto* m : {&s.candidate, &s.serving}) {
    m->row_abs_log_error.resize(kRuns);
    m->row_context.resize(kRuns);
    m->mape = 0.2;
    m->top1 = 0.9;
    m->contexts = 100;
    m->rows = kRuns;
  }
  for (size_t i = 0; i < kRuns; ++i) {
    const bool newest = i >= kRuns * 3 / 4;
    s.newest[i] = newest;
    const double base = 0.2 + noise(rng);
    s.serving.row_abs_log_error[i] = base + (newest ? serving_newer : 0);
    s.candidate.row_abs_log_error[i] = base + (newest ? newer : older) + noise(rng);
    s.serving.row_context[i] = s.candidate.row_context[i] = i / 4;
  }
  return s;
}

TEST(PromotionPolicyTest, LikeForLikePromotes) {
  const Scores s = Make(0, 0);
  const PromotionDecision d = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_TRUE(d.promote) << d.note;
}

TEST(PromotionPolicyTest, HigherErrorOnTheHeldOutRunsHoldsBack) {
  const Scores s = Make(0.1, 0.1);
  const PromotionDecision d = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_FALSE(d.promote);
  EXPECT_NE(d.note.find("higher error"), std::string::npos) << d.note;
}

TEST(PromotionPolicyTest, SuddenJumpOnTheNewestRunsHoldsBackWhereTheWholeSetDilutesIt) {
  // Slightly better on the older three quarters, much worse on the newest: +0.01 overall, inside the tolerance.
  const Scores s = Make(-0.02, 0.1);
  const PromotionDecision d = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_FALSE(d.promote);
  EXPECT_NE(d.note.find("sudden jump"), std::string::npos) << d.note;
  EXPECT_EQ(d.note.find("higher error"), std::string::npos) << d.note;
}

TEST(PromotionPolicyTest, DriftThatWorsensBothDoesNotHoldBackTheModelThatFollowsIt) {
  // On the newest runs the world changed: the serving model is 0.5 off there, the candidate only 0.2.
  const Scores s = Make(0, 0.2, 0.5);
  const PromotionDecision d = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_TRUE(d.promote) << d.note;
}

TEST(PromotionPolicyTest, LowerTopOneHoldsBack) {
  Scores s = Make(0, 0);
  s.candidate.top1 = 0.7;
  const PromotionDecision d = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_FALSE(d.promote);
  EXPECT_NE(d.note.find("top-1"), std::string::npos) << d.note;
}

TEST(PromotionPolicyTest, NewestQuarterByReportTime) {
  std::vector<model::RunRecord> runs(8);
  for (size_t i = 0; i < runs.size(); ++i) runs[i].time_unix_ms = static_cast<int64_t>((i * 5) % 8);  // shuffled
  const std::vector<bool> newest = NewestQuarter(runs);
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(newest[i], runs[i].time_unix_ms >= 6) << i;
}

}  // namespace
}  // namespace accelsel::server
