// Off-policy replay: rows from the decision log, and a model's choices on them.
#include "server/off_policy_replay.h"

#include <algorithm>
#include <cmath>

#include "proto/convert.h"
#include "server/decision_log.h"
#include "util/hash.h"

namespace accelsel::server {
namespace {

void Set(const model::Estimate& e, v1::PolicyEstimate* out) {
  const auto finite = [](double v) { return std::isfinite(v) ? v : 0.0; };
  out->set_value(finite(e.value));
  out->set_low(finite(e.low));
  out->set_high(finite(e.high));
}

}  // namespace

std::optional<double> ReplayReward(const v1::LoggedDecision& d) {
  const bool maximised = model::IsMaximized(FromProto(d.objective()));
  double lo = NAN, hi = NAN;
  for (const v1::LoggedCandidate& c : d.candidates()) {
    if (!HasLoggedEstimate(c)) continue;
    if (std::isnan(lo) || c.expected_value() < lo) lo = c.expected_value();
    if (std::isnan(hi) || c.expected_value() > hi) hi = c.expected_value();
  }
  if (std::isnan(lo)) return std::nullopt;
  const double best = maximised ? hi : lo;
  const v1::LoggedOutcome& o = d.outcome();
  if (o.status() != v1::RUN_STATUS_OK) return maximised ? std::log(0.5 * lo / best) : -std::log(2 * hi / best);
  if (!o.has_measured_value() || !(o.measured_value() > 0)) return std::nullopt;
  return maximised ? std::log(o.measured_value() / best) : -std::log(o.measured_value() / best);
}

std::optional<model::OffPolicyRow> ReplayRow(const v1::LoggedDecision& d) {
  if (!d.has_outcome() || !d.outcome().followed() || d.candidates_size() == 0) return std::nullopt;
  if (!(d.first_propensity() > 0 && d.first_propensity() <= 1)) return std::nullopt;
  const std::optional<double> reward = ReplayReward(d);
  if (!reward.has_value() || !std::isfinite(*reward)) return std::nullopt;
  model::OffPolicyRow row;
  row.context = d.context_key();
  row.actions.reserve(d.candidates_size());
  for (const v1::LoggedCandidate& c : d.candidates()) row.actions.push_back(util::StableHash(c.strategy_id()));
  row.taken = 0;
  row.propensity = d.first_propensity();
  row.reward = *reward;
  return row;
}

absl::StatusOr<ReplaySet> LoadReplaySet(storage::TelemetryStore* store, int64_t from_ms, int64_t to_ms,
                                        size_t max_decisions) {
  ReplaySet set;
  absl::Status st = ScanLoggedDecisions(store, from_ms, to_ms, [&](const v1::LoggedDecision& d) {
    if (set.rows.size() >= max_decisions) return false;
    if (std::optional<model::OffPolicyRow> row = ReplayRow(d); row.has_value()) {
      set.rows.push_back(*std::move(row));
      set.decisions.push_back(d);
    }
    return true;
  });
  if (!st.ok()) return st;
  return set;
}

std::vector<size_t> ReplayChoices(const model::Predictor& predictor, const ReplaySet& set,
                                  const absl::flat_hash_map<std::string, model::Strategy>& strategies) {
  std::vector<size_t> choices(set.decisions.size(), 0);
  std::vector<const model::Strategy*> known;
  std::vector<size_t> index;  // position of known[k] among the candidates
  std::vector<model::Prediction> predictions;
  for (size_t i = 0; i < set.decisions.size(); ++i) {
    const v1::LoggedDecision& d = set.decisions[i];
    known.clear();
    index.clear();
    for (int c = 0; c < d.candidates_size(); ++c) {
      auto it = strategies.find(d.candidates(c).strategy_id());
      if (it == strategies.end()) continue;
      known.push_back(&it->second);
      index.push_back(static_cast<size_t>(c));
    }
    if (known.empty()) continue;
    predictions.clear();
    predictor.Predict(FromProto(d.context()), known, FromProto(d.objective()), &predictions);
    const bool maximised = model::IsMaximized(FromProto(d.objective()));
    bool by_rank = true;
    for (const model::Prediction& p : predictions) by_rank = by_rank && std::isfinite(p.rank_score);
    long best = -1;
    for (size_t k = 0; k < predictions.size() && k < known.size(); ++k) {
      const model::Prediction& p = predictions[k];
      const double v = by_rank ? p.rank_score : p.expected;
      if (!std::isfinite(v)) continue;
      if (best < 0) {
        best = static_cast<long>(k);
        continue;
      }
      const model::Prediction& b = predictions[best];
      const double bv = by_rank ? b.rank_score : b.expected;
      const bool better = by_rank ? v < bv : (maximised ? v > bv : v < bv);
      if (better) best = static_cast<long>(k);
    }
    if (best >= 0) choices[i] = index[best];
  }
  return choices;
}

absl::StatusOr<model::PolicyComparison> CompareOnLog(
    const model::Predictor& candidate, const model::Predictor* baseline, const ReplaySet& set,
    const absl::flat_hash_map<std::string, model::Strategy>& strategies) {
  const model::RewardModel rewards = model::RewardModel::Fit(set.rows);
  const std::vector<size_t> cand = ReplayChoices(candidate, set, strategies);
  if (baseline != nullptr) {
    return model::ComparePolicies(set.rows, cand, ReplayChoices(*baseline, set, strategies), rewards);
  }
  // No model served: the baseline is the logging policy itself, whose value is the plain mean of its rewards
  // (on-policy: every row has weight 1). It is random, not a ranking, so it cannot be replayed as a target.
  absl::StatusOr<model::PolicyValue> value = model::EstimatePolicyValue(set.rows, cand, rewards);
  if (!value.ok()) return value.status();
  model::PolicyComparison c;
  c.candidate = *value;
  const double n = static_cast<double>(set.rows.size());
  double sum = 0, sum2 = 0;
  for (const model::OffPolicyRow& r : set.rows) {
    sum += r.reward;
    sum2 += r.reward * r.reward;
  }
  const double mean = sum / n;
  const double se = n > 1 ? std::sqrt(std::max(0.0, sum2 / n - mean * mean) / (n - 1)) : INFINITY;
  const model::Estimate on_policy{mean, mean - 1.96 * se, mean + 1.96 * se};
  c.baseline.ips = c.baseline.snips = c.baseline.dr = on_policy;
  c.baseline.ess = n;
  c.baseline.rows = c.baseline.matched = set.rows.size();
  const double se_candidate = (c.candidate.dr.high - c.candidate.dr.low) / (2 * 1.96);
  const double se_difference = std::sqrt(se_candidate * se_candidate + se * se);  // unpaired: the rows differ
  const double diff = c.candidate.dr.value - mean;
  c.dr_difference = {diff, diff - 1.96 * se_difference, diff + 1.96 * se_difference};
  return c;
}

void ToProto(const model::PolicyComparison& c, bool used_for_promotion, v1::OffPolicyEvaluation* out) {
  out->set_decisions(c.candidate.rows);
  out->set_matched(c.candidate.matched);
  out->set_effective_sample_size(std::isfinite(c.candidate.ess) ? c.candidate.ess : 0);
  Set(c.candidate.ips, out->mutable_ips());
  Set(c.candidate.snips, out->mutable_snips());
  Set(c.candidate.dr, out->mutable_doubly_robust());
  Set(c.baseline.dr, out->mutable_baseline_doubly_robust());
  Set(c.dr_difference, out->mutable_doubly_robust_difference());
  out->set_used_for_promotion(used_for_promotion);
}

}  // namespace accelsel::server
