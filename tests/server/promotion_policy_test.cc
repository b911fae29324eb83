// The promotion rule as a pure policy: the candidate and the serving model scored run by run on the same held-out
// runs, on all of them and on the newest quarter, and on held-out top-1.
#include <cmath>
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
Scores Make(double older, double newer, double serving_newer = 0, size_t runs = kRuns) {
  Scores s;
  s.newest.assign(runs, false);
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 0.02);
  for (auto* m : {&s.candidate, &s.serving}) {
    m->row_abs_log_error.resize(runs);
    m->row_context.resize(runs);
    m->mape = 0.2;
    m->top1 = 0.9;
    m->contexts = runs / 4;
    m->rows = runs;
  }
  for (size_t i = 0; i < runs; ++i) {
    const bool newest = i >= runs * 3 / 4;
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

// The held-out error decides on its own: worse on the older three quarters and level on the newest, the candidate
// passes the newest-quarter and top-1 checks, so only the error over the whole held-out set can hold it back.
TEST(PromotionPolicyTest, HigherErrorOverTheWholeHeldOutSetHoldsBackWhenTheNewestRunsAreLevel) {
  const Scores s = Make(0.1, 0);
  const PromotionDecision d = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_FALSE(d.promote) << d.note;
  EXPECT_NE(d.note.find("higher error"), std::string::npos) << d.note;
  EXPECT_EQ(d.note.find("sudden jump"), std::string::npos) << d.note;
}

// Worse by 1 %, clearly beyond two standard errors but inside the 2 % tolerance that training noise moves: promoted,
// or the model would stop following new data.
TEST(PromotionPolicyTest, SignificantlyWorseButInsideTheToleranceStillPromotes) {
  const Scores s = Make(0.01, 0.01);
  const model::PairedDifference d = model::PairedLogErrorDifference(s.candidate, s.serving);
  ASSERT_GT(d.mean, 2 * d.se);  // significant: only the tolerance lets it through
  ASSERT_LT(d.mean, kLogErrorTolerance);
  const PromotionDecision p = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_TRUE(p.promote) << p.note;
}

// With fewer than kMinRecentRuns runs in the newest quarter the comparison there is noise: not judged.
TEST(PromotionPolicyTest, NewestQuarterWithTooFewRunsIsNotJudged) {
  const size_t runs = 4 * (kMinRecentRuns - 10);  // the newest quarter holds kMinRecentRuns - 10 runs
  const Scores s = Make(-0.04, 0.1, 0, runs);
  const PromotionDecision d = DecidePromotion(s.candidate, s.serving, s.newest);
  EXPECT_TRUE(d.promote) << d.note;
  // The same shape with enough newest runs is a sudden jump.
  const Scores big = Make(-0.04, 0.1, 0, 4 * (kMinRecentRuns + 10));
  EXPECT_FALSE(DecidePromotion(big.candidate, big.serving, big.newest).promote);
}

// Held-out top-1 is undefined when no held-out context has two strategies: the candidate is judged by its error.
TEST(PromotionPolicyTest, MissingTopOneLeavesTheDecisionToTheError) {
  Scores s = Make(0, 0);
  s.candidate.top1 = std::nan("");
  EXPECT_TRUE(DecidePromotion(s.candidate, s.serving, s.newest).promote);
  s.serving.top1 = std::nan("");
  EXPECT_TRUE(DecidePromotion(s.candidate, s.serving, s.newest).promote);
  Scores worse = Make(0.1, 0.1);
  worse.candidate.top1 = std::nan("");
  EXPECT_FALSE(DecidePromotion(worse.candidate, worse.serving, worse.newest).promote);
}

// The top-1 tolerance is two standard errors over the held-out contexts: 0.85 against 0.9 on 100 contexts is
// noise, 0.8 is not.
TEST(PromotionPolicyTest, TopOneToleranceShrinksWithTheNumberOfContexts) {
  Scores s = Make(0, 0);
  s.candidate.top1 = 0.85;
  EXPECT_TRUE(DecidePromotion(s.candidate, s.serving, s.newest).promote);
  s.candidate.top1 = 0.8;
  EXPECT_FALSE(DecidePromotion(s.candidate, s.serving, s.newest).promote);
}

TEST(PromotionPolicyTest, NewestQuarterByReportTime) {
  std::vector<model::RunRecord> runs(8);
  for (size_t i = 0; i < runs.size(); ++i) runs[i].time_unix_ms = static_cast<int64_t>((i * 5) % 8);  // shuffled
  const std::vector<bool> newest = NewestQuarter(runs);
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(newest[i], runs[i].time_unix_ms >= 6) << i;
}

// The rules around the comparison: the first model serves, a candidate with nothing held out does not, nothing is
// promoted while a version is pinned, and the note says which and why.
TEST(DecideCandidateTest, FirstModelIsPromotedWhenItHasHeldOutRuns) {
  const Scores s = Make(0, 0);
  const PromotionDecision d = DecideCandidate(s.candidate, /*serving=*/nullptr, /*pinned=*/false, s.newest);
  EXPECT_TRUE(d.promote);
  EXPECT_EQ(d.note.rfind("promoted: first model", 0), 0u) << d.note;
}

TEST(DecideCandidateTest, NoHeldOutRunsIsNotPromoted) {
  Scores s = Make(0, 0);
  s.candidate.rows = 0;
  for (const model::HoldoutMetrics* serving : std::vector<const model::HoldoutMetrics*>{nullptr, &s.serving}) {
    const PromotionDecision d = DecideCandidate(s.candidate, serving, false, s.newest);
    EXPECT_FALSE(d.promote);
    EXPECT_EQ(d.note, "not promoted: no held-out runs to evaluate on; not promoted");
  }
  s.candidate.rows = kRuns;
  s.candidate.mape = std::nan("");
  EXPECT_FALSE(DecideCandidate(s.candidate, nullptr, false, s.newest).promote);
}

TEST(DecideCandidateTest, ComparesWithTheServingModel) {
  const Scores same = Make(0, 0);
  const PromotionDecision ok = DecideCandidate(same.candidate, &same.serving, false, same.newest);
  EXPECT_TRUE(ok.promote) << ok.note;
  EXPECT_EQ(ok.note, "promoted: " + DecidePromotion(same.candidate, same.serving, same.newest).note);
  const Scores worse = Make(0.1, 0.1);
  const PromotionDecision held = DecideCandidate(worse.candidate, &worse.serving, false, worse.newest);
  EXPECT_FALSE(held.promote);
  EXPECT_EQ(held.note, "not promoted: " + DecidePromotion(worse.candidate, worse.serving, worse.newest).note);
}

// A serving model without a held-out MAPE (it scored no run) is no yardstick: the candidate is promoted.
TEST(DecideCandidateTest, ServingModelWithoutScoresDoesNotHoldBack) {
  Scores s = Make(0.1, 0.1);
  s.serving.mape = std::nan("");
  const PromotionDecision d = DecideCandidate(s.candidate, &s.serving, false, s.newest);
  EXPECT_TRUE(d.promote);
  EXPECT_EQ(d.note, "promoted: ");
}

TEST(DecideCandidateTest, NothingIsPromotedWhileAVersionIsPinned) {
  const Scores s = Make(-0.1, -0.1);  // clearly better
  for (const model::HoldoutMetrics* serving : std::vector<const model::HoldoutMetrics*>{nullptr, &s.serving}) {
    const PromotionDecision d = DecideCandidate(s.candidate, serving, /*pinned=*/true, s.newest);
    EXPECT_FALSE(d.promote);
    EXPECT_NE(d.note.find("a version is pinned"), std::string::npos) << d.note;
    EXPECT_EQ(d.note.rfind("not promoted: ", 0), 0u) << d.note;
  }
}

}  // namespace
}  // namespace accelsel::server
