// Off-policy evaluation: what a candidate ranking would have achieved on logged traffic, estimated from the
// decisions the serving policy logged (with their exploration propensities) and the runs nodes reported for them.
// IPS, self-normalised IPS and doubly robust estimates with 95 % intervals, a reward model for the doubly robust
// part, a paired candidate-minus-baseline comparison and the promotion verdict drawn from it.
//
// Thread safety: pure functions of their arguments; a fitted RewardModel is immutable, so any number of threads may
// call its const methods and the estimators on it at once.
#ifndef ACCELSEL_MODEL_OFF_POLICY_H_
#define ACCELSEL_MODEL_OFF_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace accelsel::model {

// One logged decision whose placed-first candidate was run and reported.
struct OffPolicyRow {
  // Stable key of the task context (model::ContextKey); groups rows for the reward model.
  uint64_t context = 0;
  // The candidates offered, as stable action ids (strategy id hashes), in the order the target vectors index.
  std::vector<uint64_t> actions;
  // Index into `actions` of the candidate that ran (the logging policy placed it first).
  size_t taken = 0;
  // Probability with which the logging policy placed actions[taken] first, in (0, 1]. Rows outside that range are
  // skipped (a propensity of 0 means the logged action could not have been chosen: the log is wrong), except that
  // values within 1e-9 above 1 (rounding in the serving policy's arithmetic) count as 1.
  double propensity = 1;
  // Outcome of the run, higher is better; the caller maps latency, throughput and failure onto it. Rows with a
  // non-finite reward are skipped.
  double reward = 0;
};

// Whether the estimators use `row`: a finite propensity in (0, 1 + 1e-9], a finite reward and `taken` inside
// `actions`. Rows failing it are counted in PolicyValue::skipped and never reach the reward model.
bool IsUsableRow(const OffPolicyRow& row);

struct RewardModelOptions {
  // Cross-fitting folds (rows are split by a fixed hash of their index). Each row's held-out prediction comes from
  // the rows of the other folds, so its own reward never predicts itself: fitted in-sample, a sparse (context,
  // action) cell's mean is mostly that row's reward, the doubly robust residual r - r_hat shrinks towards 0 and the
  // standard error from the per-row terms understates the real one. Rows, not contexts, are split: a context's other
  // rows are the best evidence about it, and rows are independent draws, so keeping the row itself out is enough.
  // 1 = no cross-fitting (held-out predictions are the in-sample ones). Clamped to [1, 32] (each cell keeps a sum
  // per fold).
  int folds = 5;
  // Pseudo-rows of the action's mean added to each (context, action) mean: a cell seen a few times stays near what
  // the action does elsewhere until its own rows outweigh that.
  double cell_prior_rows = 3;
  // Pseudo-rows of the global mean added to each action's mean (across contexts), for cells never seen.
  double action_prior_rows = 10;
};

// Reward model for the doubly robust estimator's direct-method part: a per-(context, action) mean of the logged
// rewards, shrunk towards the action's mean over all contexts, shrunk towards the global mean (0 with no rows).
// It is fitted on the logged outcomes only and never on an evaluated policy's own predictions, which would let an
// overconfident candidate vouch for itself. Immutable once fitted.
class RewardModel {
 public:
  // Fits on the usable rows of `rows` (IsUsableRow); unusable rows are ignored. Cheap: one pass, one hash map entry
  // per (context, action) cell seen.
  static RewardModel Fit(const std::vector<OffPolicyRow>& rows, const RewardModelOptions& options = {});

  // Prediction from every fitted row.
  double Predict(uint64_t context, uint64_t action) const;
  // Prediction from the rows outside the fold of `row_index` (see RewardModelOptions::folds): what the estimators
  // use for rows[row_index] of the rows the model was fitted on. For rows the model was not fitted on it is a fit on
  // (folds - 1) / folds of the data, which is harmless.
  double PredictHeldOut(size_t row_index, uint64_t context, uint64_t action) const;

  int folds() const { return folds_; }
  // Usable rows fitted.
  uint64_t rows() const { return rows_; }

 private:
  // Sum and count of rewards per fold.
  struct FoldSums {
    std::vector<double> sum;
    std::vector<double> count;
  };
  RewardModel(const RewardModelOptions& options, int folds);
  // Sum and count over every fold except `skip_fold` (-1: over all).
  static std::pair<double, double> Total(const FoldSums& s, int skip_fold);
  double PredictExcluding(int skip_fold, uint64_t context, uint64_t action) const;

  RewardModelOptions options_;
  int folds_ = 1;
  uint64_t rows_ = 0;
  FoldSums global_;
  absl::flat_hash_map<uint64_t, FoldSums> by_action_;
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, FoldSums> by_cell_;  // (context, action)
};

// A point estimate with its 95 % interval (normal approximation). Where the rows cannot bound the value (fewer than 2
// rows, no row where the target matches the logged action, or, for SNIPS, fewer than 2 such rows) the interval is
// (-inf, +inf). Never NaN (overflowing inputs give value 0 with an infinite interval), so every field may go into
// protobuf and Prometheus as it is.
struct Estimate {
  double value = 0;
  double low = 0;
  double high = 0;
};

// A deterministic target policy's value on logged rows.
struct PolicyValue {
  // Inverse propensity scoring: mean of w_i r_i, w_i = 1[target_i == taken_i] / propensity_i. Unbiased, noisy.
  Estimate ips;
  // Self-normalised IPS: sum w_i r_i / sum w_i, interval by the delta method. Slightly biased, far less noisy when
  // weights are large. Value 0 with an infinite interval when no row matches (sum w = 0).
  Estimate snips;
  // Doubly robust: mean of r_hat(x_i, target_i) + w_i (r_i - r_hat(x_i, taken_i)), r_hat the reward model's held-out
  // prediction. Unbiased when the propensities are right, low-variance when the reward model is good.
  Estimate dr;
  // Effective sample size of the importance weights, (sum w)^2 / sum w^2; 0 when no row matches. The number of
  // on-policy rows the estimate is worth: low when the target rarely agrees with what was logged.
  double ess = 0;
  // Rows used (usable, with a target index inside `actions`).
  uint64_t rows = 0;
  // Rows used where the target's first place equals the logged one.
  uint64_t matched = 0;
  // Rows left out: not IsUsableRow, or the target index outside `actions`.
  uint64_t skipped = 0;
};

// Value of the target policy that places rows[i].actions[target[i]] first. InvalidArgument when target.size() !=
// rows.size(). `model` is normally RewardModel::Fit(rows).
absl::StatusOr<PolicyValue> EstimatePolicyValue(const std::vector<OffPolicyRow>& rows,
                                                const std::vector<size_t>& target, const RewardModel& model);

// Two target policies on the same rows (a row unusable for either is left out of both, so they stay paired).
struct PolicyComparison {
  PolicyValue candidate;
  PolicyValue baseline;
  // Candidate minus baseline, from the per-row doubly robust terms differenced (noise common to both cancels), with
  // the interval from the paired standard error. Infinite when either policy matches no row (that side would be the
  // reward model's guess alone).
  Estimate dr_difference;
};

// InvalidArgument when either target's size differs from rows.size().
absl::StatusOr<PolicyComparison> ComparePolicies(const std::vector<OffPolicyRow>& rows,
                                                 const std::vector<size_t>& target_candidate,
                                                 const std::vector<size_t>& target_baseline, const RewardModel& model);

enum class OffPolicyVerdict {
  kNotEnoughData,  // the candidate's ESS is below min_ess: the caller falls back to its held-out rule
  kWorse,          // the DR difference's upper bound < 0: confidently worse than the baseline
  kNotWorse,       // the DR difference's interval holds 0
  kBetter,         // the DR difference's lower bound > 0: confidently better
};

// The promotion verdict from a comparison, in the order above (a NaN ESS counts as not enough data). Pure.
OffPolicyVerdict JudgeCandidate(const PolicyComparison& comparison, double min_ess);

const char* OffPolicyVerdictName(OffPolicyVerdict verdict);

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_OFF_POLICY_H_
