// Off-policy estimators (model/off_policy.h) on a synthetic environment whose true policy values are known exactly:
// 20 contexts drawn uniformly, 4 candidates with a fixed true mean reward per context plus uniform noise, and an
// epsilon-greedy logging policy over a fixed ranking whose propensities are recorded. The estimators converge to the
// truth with honest intervals, the verdict tells better from worse, the reward model cannot carry a bad candidate,
// and no input gives a NaN.
#include "model/off_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace accelsel::model {
namespace {

constexpr int kContexts = 20;
constexpr int kActions = 4;
constexpr double kEpsilon = 0.2;  // logging exploration rate
// Reward = true mean, in [1, 2], plus uniform noise in [-0.5, 0.5] (sd 0.29). Rewards share an offset, as
// throughputs or negated log latencies do: IPS pays for the offset in variance, DR does not.
constexpr double kNoiseHalfWidth = 0.5;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Uniform in [0, 1) from the generator's raw bits: the same numbers on every standard library (the <random>
// distributions are not specified bit for bit).
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) / static_cast<double>(1ULL << 53); }

uint64_t ActionId(int k) { return 0x5eed0000ULL + 7919ULL * static_cast<uint64_t>(k); }
uint64_t ContextId(int c) { return 0xc0de0000ULL + 104729ULL * static_cast<uint64_t>(c); }

// Policies are written over action numbers k (which candidate); rows offer the candidates rotated by the context, so
// target vectors must translate k into the row's index and a mix-up between the two would show.
using Policy = std::vector<int>;  // context -> action number

struct Environment {
  double mean[kContexts][kActions];  // true mean reward
  Policy logging_top;                // first place of the logging ranking
  Policy best, worst;
};

Environment MakeEnvironment() {
  Environment env;
  std::mt19937_64 rng(20261207);
  for (int c = 0; c < kContexts; ++c) {
    for (int k = 0; k < kActions; ++k) env.mean[c][k] = 1 + Uniform(rng);
    std::vector<int> order(kActions);
    for (int k = 0; k < kActions; ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return env.mean[c][a] > env.mean[c][b]; });
    env.best.push_back(order[0]);
    env.worst.push_back(order[kActions - 1]);
    // The logging ranking is right in odd contexts and puts the runner-up first in even ones, so the best policy
    // is strictly better than the logged one and disagrees with it on half the contexts.
    env.logging_top.push_back(c % 2 == 1 ? order[0] : order[1]);
  }
  return env;
}

const Environment& Env() {
  static const Environment env = MakeEnvironment();
  return env;
}

double TrueValue(const Policy& policy) {
  double sum = 0;
  for (int c = 0; c < kContexts; ++c) sum += Env().mean[c][policy[c]];
  return sum / kContexts;
}

// Row index of action number k for a context (the inverse of the rotation in Generate).
size_t IndexOf(int c, int k) { return static_cast<size_t>((k - c % kActions + kActions) % kActions); }

std::vector<OffPolicyRow> Generate(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<OffPolicyRow> rows(n);
  for (OffPolicyRow& row : rows) {
    const int c = static_cast<int>(rng() % kContexts);
    row.context = ContextId(c);
    for (int j = 0; j < kActions; ++j) row.actions.push_back(ActionId((j + c) % kActions));
    const int top = Env().logging_top[c];
    const int k = Uniform(rng) < kEpsilon ? static_cast<int>(rng() % kActions) : top;
    row.taken = IndexOf(c, k);
    row.propensity = (k == top ? 1 - kEpsilon : 0) + kEpsilon / kActions;
    row.reward = Env().mean[c][k] + kNoiseHalfWidth * (2 * Uniform(rng) - 1);
  }
  return rows;
}

std::vector<size_t> TargetOf(const std::vector<OffPolicyRow>& rows, const Policy& policy) {
  std::vector<size_t> target;
  target.reserve(rows.size());
  for (const OffPolicyRow& row : rows) {
    int c = 0;
    while (ContextId(c) != row.context) ++c;
    target.push_back(IndexOf(c, policy[c]));
  }
  return target;
}

bool Covers(const Estimate& e, double truth) { return e.low <= truth && truth <= e.high; }
double Width(const Estimate& e) { return e.high - e.low; }

void ExpectNoNaN(const Estimate& e) {
  EXPECT_FALSE(std::isnan(e.value));
  EXPECT_FALSE(std::isnan(e.low));
  EXPECT_FALSE(std::isnan(e.high));
  EXPECT_LE(e.low, e.high);
}
void ExpectNoNaN(const PolicyValue& v) {
  ExpectNoNaN(v.ips);
  ExpectNoNaN(v.snips);
  ExpectNoNaN(v.dr);
  EXPECT_FALSE(std::isnan(v.ess));
}
void ExpectNoNaN(const PolicyComparison& c) {
  ExpectNoNaN(c.candidate);
  ExpectNoNaN(c.baseline);
  ExpectNoNaN(c.dr_difference);
}

PolicyValue Value(const std::vector<OffPolicyRow>& rows, const Policy& policy, const RewardModel& model) {
  absl::StatusOr<PolicyValue> v = EstimatePolicyValue(rows, TargetOf(rows, policy), model);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : PolicyValue{};
}

PolicyComparison Compare(const std::vector<OffPolicyRow>& rows, const Policy& candidate, const Policy& baseline,
                         const RewardModel& model) {
  absl::StatusOr<PolicyComparison> c =
      ComparePolicies(rows, TargetOf(rows, candidate), TargetOf(rows, baseline), model);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : PolicyComparison{};
}

TEST(OffPolicyTest, EnvironmentIsWhatTheTestsAssume) {
  const double best = TrueValue(Env().best), logged = TrueValue(Env().logging_top), worst = TrueValue(Env().worst);
  EXPECT_GT(best, logged + 0.05);
  EXPECT_LT(worst, logged - 0.2);
}

// Per estimator, over 40 seeds: the error at n = 50,000 is small and within 4 standard errors on every seed, the
// 95 % interval covers the truth for nearly every seed, and the mean error shrinks at least fourfold from n = 500 (the
// 1/sqrt(n) rate predicts tenfold). The figures go to the test's XML report (--gtest_output=xml).
TEST(OffPolicyTest, EstimatesConvergeToTheTrueValueWithHonestIntervals) {
  constexpr int kSeeds = 40;
  const double truth = TrueValue(Env().best);
  struct Tally {
    double abs_error[2] = {0, 0};  // mean over seeds, at n = 500 and n = 50,000
    double width[2] = {0, 0};      // mean interval width
    int covered[2] = {0, 0};       // seeds whose interval holds the truth
    double max_error_in_se = 0;    // at n = 50,000
  } ips, snips, dr;
  const auto tally = [truth](Tally& t, int size, const Estimate& e) {
    t.abs_error[size] += std::abs(e.value - truth) / kSeeds;
    t.width[size] += Width(e) / kSeeds;
    t.covered[size] += Covers(e, truth) ? 1 : 0;
    if (size == 1) t.max_error_in_se = std::max(t.max_error_in_se, std::abs(e.value - truth) / (Width(e) / 3.92));
  };
  for (int seed = 1; seed <= kSeeds; ++seed) {
    const size_t sizes[2] = {500, 50000};
    for (int size = 0; size < 2; ++size) {
      const std::vector<OffPolicyRow> rows = Generate(sizes[size], 1000 * size + seed);
      const PolicyValue v = Value(rows, Env().best, RewardModel::Fit(rows));
      EXPECT_EQ(v.rows, sizes[size]);
      EXPECT_EQ(v.skipped, 0u);
      tally(ips, size, v.ips);
      tally(snips, size, v.snips);
      tally(dr, size, v.dr);
    }
  }
  for (const auto& [name, t] : {std::pair{"ips", ips}, std::pair{"snips", snips}, std::pair{"dr", dr}}) {
    SCOPED_TRACE(name);
    for (int size = 0; size < 2; ++size) {
      const std::string n = size == 0 ? "_n500" : "_n50000";
      RecordProperty(name + std::string("_mean_abs_error") + n, std::to_string(t.abs_error[size]));
      RecordProperty(name + std::string("_mean_width") + n, std::to_string(t.width[size]));
      RecordProperty(name + std::string("_covered_of_40") + n, t.covered[size]);
    }
    EXPECT_LT(t.abs_error[1], 0.03);
    EXPECT_LT(t.max_error_in_se, 4);
    // Binomial(40, 0.95) falls below 34 with probability 0.3 %; an interval systematically too narrow falls well
    // below.
    EXPECT_GE(t.covered[1], 34);
    EXPECT_GT(t.abs_error[0], 4 * t.abs_error[1]);
  }
}

// With cells well estimated, the doubly robust terms vary only by the noise the reward model cannot explain, while
// IPS terms swing between 0 and 20 r: DR's interval is much narrower, and its spread over seeds agrees.
TEST(OffPolicyTest, DoublyRobustHasSmallerErrorThanIpsWithAGoodRewardModel) {
  constexpr int kSeeds = 8;
  const double truth = TrueValue(Env().best);
  double ips_sq = 0, dr_sq = 0, max_width_ratio = 0;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    const std::vector<OffPolicyRow> rows = Generate(20000, 2000 + seed);
    const PolicyValue v = Value(rows, Env().best, RewardModel::Fit(rows));
    max_width_ratio = std::max(max_width_ratio, Width(v.dr) / Width(v.ips));
    EXPECT_LT(Width(v.dr), 0.5 * Width(v.ips)) << "seed " << seed;
    ips_sq += (v.ips.value - truth) * (v.ips.value - truth);
    dr_sq += (v.dr.value - truth) * (v.dr.value - truth);
  }
  RecordProperty("max_dr_over_ips_width", std::to_string(max_width_ratio));
  RecordProperty("ips_rmse_n20000", std::to_string(std::sqrt(ips_sq / kSeeds)));
  RecordProperty("dr_rmse_n20000", std::to_string(std::sqrt(dr_sq / kSeeds)));
  EXPECT_LT(dr_sq, ips_sq) << "root mean squared error, DR " << std::sqrt(dr_sq / kSeeds) << " IPS "
                           << std::sqrt(ips_sq / kSeeds);
}

// Against the logging ranking's own first place: the best policy is judged better, the worst worse, and with a few
// hundred rows the candidate's effective sample size is too small to judge at all.
TEST(OffPolicyTest, VerdictTellsBetterFromWorseAndAsksForMoreData) {
  constexpr double kMinEss = 200;
  for (uint64_t seed : {11, 12, 13}) {
    SCOPED_TRACE(seed);
    const std::vector<OffPolicyRow> rows = Generate(50000, seed);
    const RewardModel model = RewardModel::Fit(rows);
    const PolicyComparison better = Compare(rows, Env().best, Env().logging_top, model);
    EXPECT_EQ(JudgeCandidate(better, kMinEss), OffPolicyVerdict::kBetter)
        << better.dr_difference.low << " .. " << better.dr_difference.high << " ess " << better.candidate.ess;
    // Within 4 standard errors (the interval is 3.92 of them wide); a single interval misses 5 % of the time.
    EXPECT_NEAR(better.dr_difference.value, TrueValue(Env().best) - TrueValue(Env().logging_top),
                Width(better.dr_difference));
    const PolicyComparison worse = Compare(rows, Env().worst, Env().logging_top, model);
    EXPECT_EQ(JudgeCandidate(worse, kMinEss), OffPolicyVerdict::kWorse)
        << worse.dr_difference.low << " .. " << worse.dr_difference.high << " ess " << worse.candidate.ess;
    const PolicyComparison same = Compare(rows, Env().logging_top, Env().logging_top, model);
    EXPECT_EQ(same.dr_difference.value, 0);
    EXPECT_EQ(JudgeCandidate(same, kMinEss), OffPolicyVerdict::kNotWorse);

    const std::vector<OffPolicyRow> few = Generate(300, seed);
    const PolicyComparison early = Compare(few, Env().best, Env().logging_top, RewardModel::Fit(few));
    EXPECT_LT(early.candidate.ess, kMinEss);
    EXPECT_EQ(JudgeCandidate(early, kMinEss), OffPolicyVerdict::kNotEnoughData);
  }
}

// The worst policy picks, in every context, an action the logging policy explores only 5 % of the time, so the
// reward model knows those cells least and shrinks them towards the (higher) means of the same actions elsewhere.
// The direct-method guess alone is therefore too optimistic; DR's importance-weighted correction removes that.
TEST(OffPolicyTest, BadCandidateCannotWinThroughTheRewardModel) {
  constexpr int kSeeds = 20;
  const double truth = TrueValue(Env().worst);
  double dm_error = 0, dr_error = 0;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    const std::vector<OffPolicyRow> rows = Generate(2000, 3000 + seed);
    const RewardModel model = RewardModel::Fit(rows);
    const std::vector<size_t> target = TargetOf(rows, Env().worst);
    double dm = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      dm += model.PredictHeldOut(i, rows[i].context, rows[i].actions[target[i]]) / rows.size();
    }
    dm_error += (dm - truth) / kSeeds;
    dr_error += (Value(rows, Env().worst, model).dr.value - truth) / kSeeds;
  }
  RecordProperty("dm_mean_error", std::to_string(dm_error));
  RecordProperty("dr_mean_error", std::to_string(dr_error));
  EXPECT_GT(dm_error, 0.03) << "the reward model alone flatters rarely logged actions";
  EXPECT_LT(std::abs(dr_error), dm_error / 3) << "DM " << dm_error << " DR " << dr_error;
}

// Even a reward model that believed a bad candidate's claims (its chosen actions predicted at 10, far above any true
// mean) cannot make it win: DR's correction pulls the estimate back to the truth and the interval widens instead.
TEST(OffPolicyTest, RewardModelPollutedByCandidateClaimsStillCannotMakeItWin) {
  const std::vector<OffPolicyRow> rows = Generate(50000, 41);
  std::vector<OffPolicyRow> claims;
  for (int c = 0; c < kContexts; ++c) {
    OffPolicyRow claim;
    claim.context = ContextId(c);
    claim.actions = {ActionId(Env().worst[c])};
    claim.reward = 10;
    for (int copy = 0; copy < 1000; ++copy) claims.push_back(claim);
  }
  const RewardModel polluted = RewardModel::Fit(claims, {.folds = 1});
  EXPECT_GT(polluted.Predict(ContextId(0), ActionId(Env().worst[0])), 9.9);
  const PolicyComparison c = Compare(rows, Env().worst, Env().logging_top, polluted);
  EXPECT_NEAR(c.candidate.dr.value, TrueValue(Env().worst), Width(c.candidate.dr));  // within 4 standard errors
  EXPECT_LT(c.dr_difference.low, 0);
  EXPECT_NE(JudgeCandidate(c, 200), OffPolicyVerdict::kBetter);
}

// Why the reward model cross-fits: fitted in-sample, a sparse cell's prediction is mostly the row's own reward, the
// DR residuals shrink and the interval comes out too narrow. Over 200 logs of 500 rows, for the worst policy (whose
// cells are the sparsest), the 5-fold intervals keep close to their 95 % while the in-sample ones fall well short.
TEST(OffPolicyTest, CrossFittingKeepsSmallSampleIntervalsHonest) {
  constexpr int kSeeds = 200;
  const double truth = TrueValue(Env().worst);
  int cross_fit = 0, in_sample = 0;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    const std::vector<OffPolicyRow> rows = Generate(500, 5000 + seed);
    cross_fit += Covers(Value(rows, Env().worst, RewardModel::Fit(rows)).dr, truth) ? 1 : 0;
    in_sample += Covers(Value(rows, Env().worst, RewardModel::Fit(rows, {.folds = 1})).dr, truth) ? 1 : 0;
  }
  RecordProperty("dr_coverage_of_200_cross_fit", cross_fit);
  RecordProperty("dr_coverage_of_200_in_sample", in_sample);
  EXPECT_GE(cross_fit, 170);
  EXPECT_GT(cross_fit, in_sample + 10);
}

TEST(OffPolicyTest, HeldOutPredictionLeavesTheRowItselfOut) {
  std::vector<OffPolicyRow> rows = Generate(5000, 7);
  OffPolicyRow outlier;
  outlier.context = 0xfeed;  // a context seen nowhere else
  outlier.actions = {ActionId(0), ActionId(1)};
  outlier.taken = 1;
  outlier.reward = 100;
  rows.push_back(outlier);
  const RewardModel model = RewardModel::Fit(rows);
  const size_t i = rows.size() - 1;
  const double in_sample = model.Predict(outlier.context, ActionId(1));
  const double held_out = model.PredictHeldOut(i, outlier.context, ActionId(1));
  EXPECT_GT(in_sample, 20);  // 100 shrunk by 3 pseudo-rows of the action's mean
  EXPECT_LT(held_out, 2.5);  // the action's mean elsewhere, at most 2
  const RewardModel single_fold = RewardModel::Fit(rows, {.folds = 1});
  EXPECT_DOUBLE_EQ(single_fold.PredictHeldOut(i, outlier.context, ActionId(1)), in_sample);
}

TEST(OffPolicyTest, RewardModelShrinksCellsTowardsTheActionAndTheActionTowardsTheGlobalMean) {
  std::vector<OffPolicyRow> rows;
  const auto add = [&rows](uint64_t context, uint64_t action, double reward, int copies) {
    OffPolicyRow row;
    row.context = context;
    row.actions = {action};
    row.reward = reward;
    for (int i = 0; i < copies; ++i) rows.push_back(row);
  };
  add(1, 10, 1.0, 1000);  // a well-seen cell
  add(2, 10, 3.0, 1);     // a cell seen once
  add(1, 20, 0.0, 1000);  // another action
  RewardModelOptions options;
  options.folds = 1;
  const RewardModel model = RewardModel::Fit(rows, options);
  EXPECT_EQ(model.rows(), 2001u);
  const double global = 1003.0 / 2001, action10 = (1003 + 10 * global) / (1001 + 10);
  EXPECT_NEAR(model.Predict(1, 10), (1000 + 3 * action10) / 1003, 1e-12);
  EXPECT_NEAR(model.Predict(2, 10), (3 + 3 * action10) / 4, 1e-12);
  EXPECT_NEAR(model.Predict(3, 10), action10, 1e-12);  // unseen cell: the action's mean
  EXPECT_NEAR(model.Predict(3, 30), global, 1e-12);    // unseen action: the global mean
  EXPECT_EQ(RewardModel::Fit({}).Predict(1, 2), 0);
}

TEST(OffPolicyTest, EmptyRowsGiveZeroWithNoClaimAndNotEnoughData) {
  const RewardModel model = RewardModel::Fit({});
  absl::StatusOr<PolicyComparison> c = ComparePolicies({}, {}, {}, model);
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectNoNaN(*c);
  EXPECT_EQ(c->candidate.rows, 0u);
  EXPECT_EQ(c->candidate.ess, 0);
  EXPECT_EQ(c->candidate.ips.value, 0);
  EXPECT_EQ(c->candidate.ips.low, -kInf);
  EXPECT_EQ(c->candidate.ips.high, kInf);
  EXPECT_EQ(JudgeCandidate(*c, 1), OffPolicyVerdict::kNotEnoughData);
  EXPECT_EQ(JudgeCandidate(*c, 0), OffPolicyVerdict::kNotWorse) << "no ESS floor: the infinite interval holds 0";
}

TEST(OffPolicyTest, TargetThatNeverMatchesADeterministicLogHasNoEvidence) {
  std::vector<OffPolicyRow> rows = Generate(1000, 5);
  std::vector<size_t> logged, other;
  for (OffPolicyRow& row : rows) {
    row.propensity = 1;
    logged.push_back(row.taken);
    other.push_back((row.taken + 1) % row.actions.size());
  }
  const RewardModel model = RewardModel::Fit(rows);
  absl::StatusOr<PolicyComparison> c = ComparePolicies(rows, other, logged, model);
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectNoNaN(*c);
  EXPECT_EQ(c->candidate.ips.value, 0);
  EXPECT_EQ(c->candidate.snips.value, 0);
  EXPECT_EQ(c->candidate.ess, 0);
  EXPECT_EQ(c->candidate.matched, 0u);
  EXPECT_EQ(c->candidate.ips.high, kInf);
  EXPECT_EQ(c->dr_difference.low, -kInf);
  EXPECT_EQ(c->baseline.matched, 1000u);
  EXPECT_DOUBLE_EQ(c->baseline.ess, 1000);
  EXPECT_EQ(JudgeCandidate(*c, 10), OffPolicyVerdict::kNotEnoughData);
  EXPECT_EQ(JudgeCandidate(*c, 0), OffPolicyVerdict::kNotWorse);
}

TEST(OffPolicyTest, UnusableRowsAreSkippedAndCounted) {
  std::vector<OffPolicyRow> rows = Generate(400, 9);
  const PolicyValue clean = Value(rows, Env().best, RewardModel::Fit(rows));
  const auto bad = [&rows](auto mutate) {
    OffPolicyRow row = rows[0];
    mutate(row);
    rows.push_back(row);
  };
  bad([](OffPolicyRow& r) { r.propensity = 0; });
  bad([](OffPolicyRow& r) { r.propensity = -0.5; });
  bad([](OffPolicyRow& r) { r.propensity = 1.5; });
  bad([](OffPolicyRow& r) { r.propensity = std::nan(""); });
  bad([](OffPolicyRow& r) { r.propensity = 1e-320; });  // 1 / p overflows
  bad([](OffPolicyRow& r) { r.reward = std::nan(""); });
  bad([](OffPolicyRow& r) { r.reward = kInf; });
  bad([](OffPolicyRow& r) { r.taken = r.actions.size(); });
  bad([](OffPolicyRow& r) { r.actions.clear(); });
  EXPECT_TRUE(IsUsableRow([] {
    OffPolicyRow r;
    r.actions = {1};
    r.propensity = 1 + 1e-12;  // rounding above 1 counts as 1
    return r;
  }()));
  const RewardModel model = RewardModel::Fit(rows);
  EXPECT_EQ(model.rows(), 400u);
  std::vector<size_t> target = TargetOf(std::vector<OffPolicyRow>(rows.begin(), rows.begin() + 400), Env().best);
  target.resize(rows.size(), 0);
  target[1] = 99;  // a target outside the row's actions
  absl::StatusOr<PolicyValue> v = EstimatePolicyValue(rows, target, model);
  ASSERT_TRUE(v.ok()) << v.status();
  ExpectNoNaN(*v);
  EXPECT_EQ(v->rows, 399u);
  EXPECT_EQ(v->skipped, 10u);
  EXPECT_NEAR(v->ips.value, clean.ips.value, 0.2);  // one usable row fewer
}

TEST(OffPolicyTest, MismatchedTargetSizeIsAnError) {
  const std::vector<OffPolicyRow> rows = Generate(10, 1);
  const RewardModel model = RewardModel::Fit(rows);
  EXPECT_EQ(EstimatePolicyValue(rows, {0, 1}, model).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComparePolicies(rows, std::vector<size_t>(10), {}, model).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OffPolicyTest, ExtremeButFiniteInputsGiveNoNaN) {
  std::vector<OffPolicyRow> rows(4);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].context = i % 2;
    rows[i].actions = {1, 2};
    rows[i].taken = 0;
    rows[i].propensity = 1e-300;
    rows[i].reward = (i % 2 ? 1 : -1) * 1e300;
  }
  const RewardModel model = RewardModel::Fit(rows);
  EXPECT_FALSE(std::isnan(model.Predict(0, 1)));
  absl::StatusOr<PolicyComparison> c = ComparePolicies(rows, {0, 0, 0, 0}, {1, 1, 1, 1}, model);
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectNoNaN(*c);
  EXPECT_EQ(c->candidate.ess, 0) << "an overflowing ESS claims nothing";
  EXPECT_EQ(JudgeCandidate(*c, 1), OffPolicyVerdict::kNotEnoughData);
}

TEST(OffPolicyTest, JudgeFollowsTheIntervalOnceTheEssSuffices) {
  PolicyComparison c;
  c.candidate.ess = 100;
  c.dr_difference = {-0.2, -0.3, -0.1};
  EXPECT_EQ(JudgeCandidate(c, 100), OffPolicyVerdict::kWorse);
  EXPECT_EQ(JudgeCandidate(c, 100.5), OffPolicyVerdict::kNotEnoughData);
  c.dr_difference = {0.2, 0.1, 0.3};
  EXPECT_EQ(JudgeCandidate(c, 50), OffPolicyVerdict::kBetter);
  c.dr_difference = {0.0, -0.1, 0.1};
  EXPECT_EQ(JudgeCandidate(c, 50), OffPolicyVerdict::kNotWorse);
  c.dr_difference = {-0.1, -0.2, 0.0};  // touching 0 is not confidently worse
  EXPECT_EQ(JudgeCandidate(c, 50), OffPolicyVerdict::kNotWorse);
  EXPECT_EQ(JudgeCandidate(c, std::nan("")), OffPolicyVerdict::kNotEnoughData);
  EXPECT_STREQ(OffPolicyVerdictName(OffPolicyVerdict::kBetter), "better");
}

}  // namespace
}  // namespace accelsel::model
