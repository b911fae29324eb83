// Off-policy estimators, the reward model and the promotion verdict (see off_policy.h).
#include "model/off_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace accelsel::model {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Two-sided 95 % quantile of the standard normal.
constexpr double kZ95 = 1.959963984540054;
// Propensities computed as 1 - (sum of the others) may land a few ulps above 1.
constexpr double kPropensitySlack = 1e-9;
constexpr int kMaxFolds = 32;
// Salt for the fold hash, so fold membership is unrelated to any other use of the row index.
constexpr uint64_t kFoldSalt = 0x6f666670'6f6c6379ULL;

// SplitMix64's finaliser: neighbouring indices land in unrelated folds, so traffic with a period (contexts served
// round-robin) cannot put a whole context into one fold.
uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

int FoldOf(size_t row_index, int folds) {
  return folds <= 1 ? 0 : static_cast<int>(Mix64(static_cast<uint64_t>(row_index) ^ kFoldSalt) % folds);
}

double Propensity(const OffPolicyRow& row) { return std::min(row.propensity, 1.0); }

// Callers export these to protobuf and Prometheus, which take infinities but where a NaN would poison sums and
// alerts: a NaN value (overflowing inputs) becomes 0 with an interval that claims nothing.
Estimate Sanitized(Estimate e) {
  if (std::isnan(e.value)) return {0, -kInf, kInf};
  if (std::isnan(e.low)) e.low = -kInf;
  if (std::isnan(e.high)) e.high = kInf;
  return e;
}

constexpr Estimate kUnknown{0, -kInf, kInf};

// Mean of `terms` with the interval from its standard error (Welford's update, stable for large means).
Estimate MeanEstimate(const std::vector<double>& terms) {
  if (terms.empty()) return kUnknown;
  double mean = 0, m2 = 0, n = 0;
  for (const double x : terms) {
    n += 1;
    const double delta = x - mean;
    mean += delta / n;
    m2 += delta * (x - mean);
  }
  if (terms.size() < 2) return Sanitized({mean, -kInf, kInf});
  const double se = std::sqrt(std::max(0.0, m2) / (n - 1) / n);
  return Sanitized({mean, mean - kZ95 * se, mean + kZ95 * se});
}

// The per-row quantities of one target policy over the rows selected by `use`.
struct Terms {
  PolicyValue value;
  std::vector<double> dr;  // one per used row, in row order
};

Terms Evaluate(const std::vector<OffPolicyRow>& rows, const std::vector<size_t>& target, const RewardModel& model,
               const std::vector<bool>& use) {
  Terms t;
  std::vector<double> ips;
  ips.reserve(rows.size());
  t.dr.reserve(rows.size());
  double sum_w = 0, sum_w2 = 0, sum_wr = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!use[i]) {
      ++t.value.skipped;
      continue;
    }
    const OffPolicyRow& row = rows[i];
    const bool matched = target[i] == row.taken;
    const double w = matched ? 1.0 / Propensity(row) : 0.0;
    ++t.value.rows;
    t.value.matched += matched ? 1 : 0;
    sum_w += w;
    sum_w2 += w * w;
    sum_wr += w * row.reward;
    ips.push_back(w * row.reward);
    const double predicted_target = model.PredictHeldOut(i, row.context, row.actions[target[i]]);
    const double predicted_taken =
        matched ? predicted_target : model.PredictHeldOut(i, row.context, row.actions[row.taken]);
    t.dr.push_back(predicted_target + w * (row.reward - predicted_taken));
  }
  PolicyValue& v = t.value;
  // With no matched row the data say nothing about the target: a zero standard error there would be a claim of
  // certainty, so every interval is left infinite (DR's value is then the reward model's guess alone).
  if (v.matched == 0) {
    v.ips = {0, -kInf, kInf};
    v.snips = kUnknown;
    v.dr = {MeanEstimate(t.dr).value, -kInf, kInf};
    v.ess = 0;
    return t;
  }
  v.ips = MeanEstimate(ips);
  v.dr = MeanEstimate(t.dr);
  v.ess = sum_w2 > 0 ? sum_w * sum_w / sum_w2 : 0;
  if (!std::isfinite(v.ess)) v.ess = 0;
  // Delta method for a ratio of means: Var ~= sum w_i^2 (r_i - V)^2 / (sum w_i)^2. One matched row gives no spread.
  const double snips = sum_wr / sum_w;
  if (v.matched < 2) {
    v.snips = Sanitized({snips, -kInf, kInf});
  } else {
    double s = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!use[i] || target[i] != rows[i].taken) continue;
      const double w = 1.0 / Propensity(rows[i]);
      s += w * w * (rows[i].reward - snips) * (rows[i].reward - snips);
    }
    const double se = std::sqrt(s) / sum_w;
    v.snips = Sanitized({snips, snips - kZ95 * se, snips + kZ95 * se});
  }
  return t;
}

bool TargetInRange(const OffPolicyRow& row, size_t target) { return target < row.actions.size(); }

absl::Status CheckSize(const std::vector<OffPolicyRow>& rows, const std::vector<size_t>& target, const char* what) {
  if (target.size() == rows.size()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat("%s has %d entries for %d rows", what, target.size(), rows.size()));
}

}  // namespace

bool IsUsableRow(const OffPolicyRow& row) {
  return std::isfinite(row.propensity) && row.propensity > 0 && row.propensity <= 1 + kPropensitySlack &&
         std::isfinite(1.0 / row.propensity) && std::isfinite(row.reward) && row.taken < row.actions.size();
}

RewardModel::RewardModel(const RewardModelOptions& options, int folds) : options_(options), folds_(folds) {
  global_.sum.assign(folds_, 0);
  global_.count.assign(folds_, 0);
}

RewardModel RewardModel::Fit(const std::vector<OffPolicyRow>& rows, const RewardModelOptions& options) {
  RewardModel m(options, std::clamp(options.folds, 1, kMaxFolds));
  // NaN or negative prior strengths would poison every prediction; they mean "no prior".
  m.options_.cell_prior_rows = std::max(0.0, options.cell_prior_rows);
  m.options_.action_prior_rows = std::max(0.0, options.action_prior_rows);
  const auto add = [&m](FoldSums& s, int fold, double reward) {
    if (s.sum.empty()) {
      s.sum.assign(m.folds_, 0);
      s.count.assign(m.folds_, 0);
    }
    s.sum[fold] += reward;
    s.count[fold] += 1;
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const OffPolicyRow& row = rows[i];
    if (!IsUsableRow(row)) continue;
    const int fold = FoldOf(i, m.folds_);
    const uint64_t action = row.actions[row.taken];
    add(m.global_, fold, row.reward);
    add(m.by_action_[action], fold, row.reward);
    add(m.by_cell_[{row.context, action}], fold, row.reward);
    ++m.rows_;
  }
  return m;
}

std::pair<double, double> RewardModel::Total(const FoldSums& s, int skip_fold) {
  double sum = 0, count = 0;
  for (size_t f = 0; f < s.sum.size(); ++f) {
    if (static_cast<int>(f) == skip_fold) continue;
    sum += s.sum[f];
    count += s.count[f];
  }
  return {sum, count};
}

double RewardModel::PredictExcluding(int skip_fold, uint64_t context, uint64_t action) const {
  // Shrinkage towards a prior mean: (sum + k * prior) / (count + k), the prior itself when nothing was seen.
  const auto shrink = [](std::pair<double, double> seen, double k, double prior) {
    const double denominator = seen.second + k;
    return denominator > 0 ? (seen.first + k * prior) / denominator : prior;
  };
  const std::pair<double, double> global = Total(global_, skip_fold);
  double prediction = global.second > 0 ? global.first / global.second : 0;
  if (const auto it = by_action_.find(action); it != by_action_.end()) {
    prediction = shrink(Total(it->second, skip_fold), options_.action_prior_rows, prediction);
  }
  if (const auto it = by_cell_.find({context, action}); it != by_cell_.end()) {
    prediction = shrink(Total(it->second, skip_fold), options_.cell_prior_rows, prediction);
  }
  return std::isnan(prediction) ? 0 : prediction;
}

double RewardModel::Predict(uint64_t context, uint64_t action) const { return PredictExcluding(-1, context, action); }

double RewardModel::PredictHeldOut(size_t row_index, uint64_t context, uint64_t action) const {
  return PredictExcluding(folds_ > 1 ? FoldOf(row_index, folds_) : -1, context, action);
}

absl::StatusOr<PolicyValue> EstimatePolicyValue(const std::vector<OffPolicyRow>& rows,
                                                const std::vector<size_t>& target, const RewardModel& model) {
  if (absl::Status s = CheckSize(rows, target, "target"); !s.ok()) return s;
  std::vector<bool> use(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) use[i] = IsUsableRow(rows[i]) && TargetInRange(rows[i], target[i]);
  return Evaluate(rows, target, model, use).value;
}

absl::StatusOr<PolicyComparison> ComparePolicies(const std::vector<OffPolicyRow>& rows,
                                                 const std::vector<size_t>& target_candidate,
                                                 const std::vector<size_t>& target_baseline, const RewardModel& model) {
  if (absl::Status s = CheckSize(rows, target_candidate, "target_candidate"); !s.ok()) return s;
  if (absl::Status s = CheckSize(rows, target_baseline, "target_baseline"); !s.ok()) return s;
  std::vector<bool> use(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    use[i] = IsUsableRow(rows[i]) && TargetInRange(rows[i], target_candidate[i]) &&
             TargetInRange(rows[i], target_baseline[i]);
  }
  Terms candidate = Evaluate(rows, target_candidate, model, use);
  Terms baseline = Evaluate(rows, target_baseline, model, use);
  std::vector<double> difference(candidate.dr.size());
  for (size_t j = 0; j < difference.size(); ++j) difference[j] = candidate.dr[j] - baseline.dr[j];
  PolicyComparison c;
  c.candidate = candidate.value;
  c.baseline = baseline.value;
  c.dr_difference = MeanEstimate(difference);
  // A side no row matches is known only through the reward model's guess; the difference then claims nothing.
  if (c.candidate.matched == 0 || c.baseline.matched == 0) c.dr_difference = {c.dr_difference.value, -kInf, kInf};
  return c;
}

OffPolicyVerdict JudgeCandidate(const PolicyComparison& comparison, double min_ess) {
  if (!(comparison.candidate.ess >= min_ess)) return OffPolicyVerdict::kNotEnoughData;
  if (comparison.dr_difference.high < 0) return OffPolicyVerdict::kWorse;
  if (comparison.dr_difference.low > 0) return OffPolicyVerdict::kBetter;
  return OffPolicyVerdict::kNotWorse;
}

const char* OffPolicyVerdictName(OffPolicyVerdict verdict) {
  switch (verdict) {
    case OffPolicyVerdict::kNotEnoughData: return "not_enough_data";
    case OffPolicyVerdict::kWorse: return "worse";
    case OffPolicyVerdict::kNotWorse: return "not_worse";
    case OffPolicyVerdict::kBetter: return "better";
  }
  return "unknown";
}

}  // namespace accelsel::model
