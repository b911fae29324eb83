// Off-policy evaluation before promotion, end to end on a synthetic network with a known truth: decisions logged
// by an epsilon-greedy policy into a real store, replayed with LoadReplaySet, two rankings compared with
// CompareOnLog, and the verdict applied by DecideCandidate. Also the reward and row rules.
#include "server/off_policy_replay.h"

#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/context_key.h"
#include "proto/convert.h"
#include "server/decision_log.h"
#include "server/model_manager.h"
#include "tests/server/test_server.h"

namespace accelsel::server {
namespace {

constexpr int kContexts = 24;
constexpr int kStrategies = 4;
constexpr double kEpsilon = 0.3;
constexpr double kNoiseSigma = 0.1;  // of ln(measured / true)
constexpr int64_t kT0 = 1'780'000'000'000;

std::string StrategyId(int s) { return absl::StrCat("s", s); }

// A ranking that predicts fixed values per (context, strategy); the context is told by its batch size.
class TablePredictor : public model::Predictor {
 public:
  explicit TablePredictor(std::vector<std::vector<double>> table) : table_(std::move(table)) {}
  uint64_t version() const override { return 1; }
  void Predict(const model::TaskContext& context, const std::vector<const model::Strategy*>& strategies,
               model::Objective, std::vector<model::Prediction>* out) const override {
    out->clear();
    const int c = static_cast<int>(context.workload.batch_size) - 1;
    for (const model::Strategy* s : strategies) {
      model::Prediction p;
      p.expected = table_[c][std::stoi(s->id.substr(1))];
      out->push_back(p);
    }
  }

 private:
  std::vector<std::vector<double>> table_;
};

class OffPolicyReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions so;
    so.path = testing::FreshDir("off-policy-replay");
    so.sync_writes = false;
    auto store = storage::TelemetryStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> latency(50, 500), error(0.7, 1.4);
    truth_.assign(kContexts, std::vector<double>(kStrategies));
    logging_estimate_ = truth_;
    for (int c = 0; c < kContexts; ++c) {
      for (int s = 0; s < kStrategies; ++s) {
        truth_[c][s] = latency(rng);
        // The serving policy's estimates are off by up to 40 %: it often places a slower strategy first.
        logging_estimate_[c][s] = truth_[c][s] * error(rng);
      }
    }
    for (int s = 0; s < kStrategies; ++s) {
      model::Strategy st;
      st.id = StrategyId(s);
      strategies_.emplace(st.id, st);
    }
  }

  static v1::TaskContext Context(int c) {
    v1::TaskContext ctx = testing::MakeContext(static_cast<uint32_t>(c + 1));
    return ctx;
  }

  // Logs `n` decisions of the epsilon-greedy serving policy, each joined with its followed run.
  void Log(int n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> pick_context(0, kContexts - 1), pick_any(0, kStrategies - 1);
    std::uniform_real_distribution<double> coin(0, 1);
    std::normal_distribution<double> noise(0, kNoiseSigma);
    std::vector<std::pair<std::string, std::string>> batch;
    for (int i = 0; i < n; ++i) {
      const int c = pick_context(rng);
      std::vector<int> order(kStrategies);
      for (int s = 0; s < kStrategies; ++s) order[s] = s;
      std::sort(order.begin(), order.end(),
                [&](int a, int b) { return logging_estimate_[c][a] < logging_estimate_[c][b]; });
      const int first = coin(rng) < kEpsilon ? pick_any(rng) : order[0];
      const double propensity = (first == order[0] ? 1 - kEpsilon : 0) + kEpsilon / kStrategies;
      std::stable_partition(order.begin(), order.end(), [&](int s) { return s == first; });
      v1::LoggedDecision d;
      d.set_decision_id(MakeDecisionId(kT0 + i, seed * 1000003 + i));
      d.set_time_unix_ms(kT0 + i);
      *d.mutable_context() = Context(c);
      d.set_context_key(model::ContextKey(FromProto(d.context())));
      d.set_objective(v1::OBJECTIVE_E2E_LATENCY);
      for (int s : order) {
        v1::LoggedCandidate* cand = d.add_candidates();
        cand->set_strategy_id(StrategyId(s));
        cand->set_expected_value(logging_estimate_[c][s]);
        cand->set_evidence_layer(v1::EVIDENCE_LAYER_MODEL);
      }
      d.set_first_propensity(propensity);
      v1::LoggedOutcome* o = d.mutable_outcome();
      o->set_strategy_id(StrategyId(first));
      o->set_candidate_index(0);
      o->set_followed(true);
      o->set_status(v1::RUN_STATUS_OK);
      o->set_measured_value(truth_[c][first] * std::exp(noise(rng)));
      batch.emplace_back(d.decision_id(), d.SerializeAsString());
    }
    ASSERT_TRUE(store_->PutDecisions(batch).ok());
  }

  // The true value of a ranking that predicts `table`: the mean over contexts (drawn uniformly) of the reward of
  // its first place, -ln(true / lowest logged estimate).
  double TrueValue(const std::vector<std::vector<double>>& table) const {
    double sum = 0;
    for (int c = 0; c < kContexts; ++c) {
      int best = 0;
      for (int s = 1; s < kStrategies; ++s) {
        if (table[c][s] < table[c][best]) best = s;
      }
      double ref = logging_estimate_[c][0];
      for (int s = 1; s < kStrategies; ++s) ref = std::min(ref, logging_estimate_[c][s]);
      sum += -std::log(truth_[c][best] / ref);
    }
    return sum / kContexts;
  }

  std::vector<std::vector<double>> Reversed() const {
    auto out = truth_;
    for (auto& row : out) {
      for (double& v : row) v = 1e6 / v;
    }
    return out;
  }

  model::PolicyComparison Compare(const std::vector<std::vector<double>>& candidate,
                                  const std::vector<std::vector<double>>* baseline) {
    auto set = LoadReplaySet(store_.get(), kT0 - 1, kT0 + 10'000'000, 1'000'000);
    EXPECT_TRUE(set.ok()) << set.status();
    TablePredictor cand(candidate);
    std::unique_ptr<TablePredictor> base;
    if (baseline != nullptr) base = std::make_unique<TablePredictor>(*baseline);
    auto c = CompareOnLog(cand, base.get(), *set, strategies_);
    EXPECT_TRUE(c.ok()) << c.status();
    return *c;
  }

  std::vector<std::vector<double>> truth_, logging_estimate_;
  absl::flat_hash_map<std::string, model::Strategy> strategies_;
  std::unique_ptr<storage::TelemetryStore> store_;
};

TEST_F(OffPolicyReplayTest, EstimatesConvergeToTheTrueValueOfTheCandidatesRanking) {
  const double truth = TrueValue(truth_);
  Log(300, 1);
  const model::PolicyComparison small = Compare(truth_, nullptr);
  EXPECT_EQ(small.candidate.rows, 300u);
  Log(29700, 2);
  const model::PolicyComparison large = Compare(truth_, nullptr);
  EXPECT_EQ(large.candidate.rows, 30000u);
  for (const model::Estimate* e : {&large.candidate.ips, &large.candidate.snips, &large.candidate.dr}) {
    EXPECT_LE(e->low, truth);
    EXPECT_GE(e->high, truth);
    EXPECT_NEAR(e->value, truth, 0.03);
  }
  // The interval narrows about as 1/sqrt(n): 100 x the data, about a tenth of the width.
  EXPECT_LT(large.candidate.dr.high - large.candidate.dr.low, 0.2 * (small.candidate.dr.high - small.candidate.dr.low));
  // Without a serving model the baseline is the logging policy itself, estimated on its own traffic.
  double logging_truth = 0;
  for (int c = 0; c < kContexts; ++c) {
    double ref = logging_estimate_[c][0];
    int first = 0;
    for (int s = 1; s < kStrategies; ++s) {
      ref = std::min(ref, logging_estimate_[c][s]);
      if (logging_estimate_[c][s] < logging_estimate_[c][first]) first = s;
    }
    for (int s = 0; s < kStrategies; ++s) {
      const double p = (s == first ? 1 - kEpsilon : 0) + kEpsilon / kStrategies;
      logging_truth += p * -std::log(truth_[c][s] / ref) / kContexts;
    }
  }
  EXPECT_LE(large.baseline.dr.low, logging_truth);
  EXPECT_GE(large.baseline.dr.high, logging_truth);
  EXPECT_GT(large.dr_difference.low, 0);  // the true ranking beats a noisy, exploring one
}

TEST_F(OffPolicyReplayTest, AWorseCandidateIsRejectedAndABetterOnePromoted) {
  Log(20000, 3);
  const auto reversed = Reversed();
  model::HoldoutMetrics same;  // the held-out rule sees no difference: it would promote
  same.mape = 0.2;
  same.top1 = 0.9;
  same.rows = 100;
  same.contexts = 25;
  same.row_abs_log_error.assign(100, 0.2);
  for (int i = 0; i < 100; ++i) same.row_context.push_back(i / 4);
  const std::vector<bool> newest(100, false);

  const model::PolicyComparison worse = Compare(reversed, &truth_);
  EXPECT_LT(worse.dr_difference.high, 0);
  EXPECT_NEAR(worse.dr_difference.value, TrueValue(reversed) - TrueValue(truth_), 0.05);
  const PromotionDecision rejected = DecideCandidate(same, &same, false, newest, {&worse, 200});
  EXPECT_FALSE(rejected.promote) << rejected.note;
  EXPECT_TRUE(rejected.used_off_policy);
  EXPECT_NE(rejected.note.find("worse on logged traffic"), std::string::npos) << rejected.note;

  const model::PolicyComparison better = Compare(truth_, &reversed);
  EXPECT_GT(better.dr_difference.low, 0);
  model::HoldoutMetrics worse_holdout = same;  // the held-out rule alone would hold it back
  for (double& e : worse_holdout.row_abs_log_error) e = 0.5;
  worse_holdout.mape = 0.5;
  EXPECT_FALSE(DecideCandidate(worse_holdout, &same, false, newest).promote);
  const PromotionDecision promoted = DecideCandidate(worse_holdout, &same, false, newest, {&better, 200});
  EXPECT_TRUE(promoted.promote) << promoted.note;
  EXPECT_NE(promoted.note.find("better on logged traffic"), std::string::npos) << promoted.note;

  // Below --ope_min_ess the replay is reported, not used; a pinned version stays pinned whatever it says.
  const PromotionDecision unused = DecideCandidate(same, &same, false, newest, {&worse, 1e9});
  EXPECT_TRUE(unused.promote) << unused.note;
  EXPECT_FALSE(unused.used_off_policy);
  EXPECT_NE(unused.note.find("not used"), std::string::npos) << unused.note;
  EXPECT_FALSE(DecideCandidate(same, &same, true, newest, {&better, 200}).promote);

  v1::OffPolicyEvaluation proto;
  ToProto(worse, true, &proto);
  EXPECT_EQ(proto.decisions(), 20000u);
  EXPECT_TRUE(proto.used_for_promotion());
  EXPECT_DOUBLE_EQ(proto.doubly_robust_difference().value(), worse.dr_difference.value);
}

TEST(ReplayRewardTest, RewardIsTheLogRatioToTheBestEstimateAndFailuresCountAsTwiceTheWorst) {
  v1::LoggedDecision d;
  d.set_objective(v1::OBJECTIVE_E2E_LATENCY);
  d.set_first_propensity(0.5);
  for (double v : {100.0, 400.0}) {
    auto* c = d.add_candidates();
    c->set_strategy_id(absl::StrCat("s", v));
    c->set_expected_value(v);
    c->set_evidence_layer(v1::EVIDENCE_LAYER_OBSERVED);
  }
  d.add_candidates()->set_strategy_id("unknown");  // no estimate: not the reference
  d.mutable_outcome()->set_followed(true);
  d.mutable_outcome()->set_status(v1::RUN_STATUS_OK);
  d.mutable_outcome()->set_measured_value(200);
  EXPECT_NEAR(*ReplayReward(d), -std::log(2.0), 1e-12);
  ASSERT_TRUE(ReplayRow(d).has_value());
  EXPECT_EQ(ReplayRow(d)->taken, 0u);
  EXPECT_EQ(ReplayRow(d)->actions.size(), 3u);
  EXPECT_DOUBLE_EQ(ReplayRow(d)->propensity, 0.5);

  d.mutable_outcome()->set_status(v1::RUN_STATUS_OOM);
  EXPECT_NEAR(*ReplayReward(d), -std::log(8.0), 1e-12);  // twice the worst estimate, 400, against 100

  d.set_objective(v1::OBJECTIVE_THROUGHPUT);
  d.mutable_outcome()->set_status(v1::RUN_STATUS_OK);
  EXPECT_NEAR(*ReplayReward(d), std::log(0.5), 1e-12);  // 200 tokens/s against the best estimate, 400
  d.set_objective(v1::OBJECTIVE_E2E_LATENCY);

  v1::LoggedDecision not_followed = d;
  not_followed.mutable_outcome()->set_followed(false);
  EXPECT_FALSE(ReplayRow(not_followed).has_value());  // the node's own choice has no logged propensity
  v1::LoggedDecision unmeasured = d;
  unmeasured.mutable_outcome()->clear_measured_value();
  EXPECT_FALSE(ReplayRow(unmeasured).has_value());
  v1::LoggedDecision no_propensity = d;
  no_propensity.set_first_propensity(0);
  EXPECT_FALSE(ReplayRow(no_propensity).has_value());
  v1::LoggedDecision no_estimates = d;
  for (auto& c : *no_estimates.mutable_candidates()) c.set_evidence_layer(v1::EVIDENCE_LAYER_UNKNOWN);
  EXPECT_FALSE(ReplayRow(no_estimates).has_value());
  v1::LoggedDecision unjoined = d;
  unjoined.clear_outcome();
  EXPECT_FALSE(ReplayRow(unjoined).has_value());
}

}  // namespace
}  // namespace accelsel::server
