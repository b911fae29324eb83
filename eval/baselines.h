// Learners that exist to be compared with, and the evaluator's model selection: kNN (ISAC-like), the single best
// strategy (SBS) and AutoLearner, which picks among them and the product's XGBoost learners by inner
// cross-validation. The server never runs these.
#ifndef ACCELSEL_EVAL_BASELINES_H_
#define ACCELSEL_EVAL_BASELINES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/learner.h"

namespace accelsel::eval {

using model::CandidateRef;
using model::Dataset;
using model::Learner;
using model::LogPrediction;
using model::XgbLearner;
using model::XgbLearnerOptions;

// How SBS and kNN aggregate a strategy's costs over tasks.
enum class Aggregate {
  kLogRegret,  // mean of (log cost − best log cost of that task): geometric-mean slowdown; copes with sparse data
  kRawMean,    // mean of cost (e.g. PAR10): what a runtime-sum metric rewards
  kMean,       // mean of the target itself: an ASlib solution-quality measure, learned on its own scale
};

// Cost of a row with target y in a task whose best target is `best_y`, as the aggregate counts it.
double AggregateCost(Aggregate aggregate, double y, double best_y);

// The plain baseline's settings ("xgb_plain"): XGBoost's own defaults for a regression (eta 0.3, max_depth 6,
// min_child_weight 1, lambda 1, no row or column sampling, 256 histogram bins) and 100 rounds (the
// scikit-learn wrapper's default; the C API has none). None of the tuned XgbParams defaults, no intervals.
// Kept off the defaults only where the machine needs it: tree_method hist (what XgbBooster always builds) and
// one thread.
model::XgbLearnerOptions PlainXgbOptions(uint64_t seed);

// ISAC-like: the k nearest training tasks (standardised features, fitted on training tasks only) vote with
// their aggregate cost per strategy.
class KnnLearner : public model::Learner {
 public:
  KnnLearner(int k, Aggregate aggregate) : k_(k), aggregate_(aggregate) {}
  std::string name() const override { return "knn"; }
  absl::Status Fit(const model::Dataset& data) override;
  absl::Status Predict(const float* task_x, const std::vector<model::CandidateRef>& candidates,
                       std::vector<model::LogPrediction>* out) const override;

 private:
  int k_;
  Aggregate aggregate_;
  size_t dim_ = 0;
  std::vector<double> mean_, inv_std_;
  std::vector<float> z_;  // standardised training tasks
  std::vector<std::vector<std::pair<uint64_t, double>>> task_scores_;
  std::vector<std::pair<uint64_t, double>> fallback_;  // SBS scores for strategies no neighbour ran
};

// Single best strategy on the training data: the same ranking of strategies for every task.
class SbsLearner : public model::Learner {
 public:
  explicit SbsLearner(Aggregate aggregate) : aggregate_(aggregate) {}
  std::string name() const override { return "sbs"; }
  absl::Status Fit(const model::Dataset& data) override;
  absl::Status Predict(const float* task_x, const std::vector<model::CandidateRef>& candidates,
                       std::vector<model::LogPrediction>* out) const override;
  // Aggregate score per strategy key (lower is better).
  const std::vector<std::pair<uint64_t, double>>& scores() const { return scores_; }

 private:
  Aggregate aggregate_;
  std::vector<std::pair<uint64_t, double>> scores_;
};

// The evaluator's default selector: model selection by inner cross-validation on the training tasks only.
// Candidates: XGBoost regression (its out-of-fold predictions come free with the interval folds), XGBoost
// pairwise ranking, kNN, SBS and the rank average of the first three ("ens", scored from the same inner
// out-of-fold scores); the one whose inner out-of-fold choices cost least is refitted on all training
// tasks and ranks the candidates. Values and intervals always come from the regression. Safe on small or hard
// data sets (it falls back to SBS, which then needs no task features) and never looks at test data.
class AutoLearner : public model::Learner {
 public:
  AutoLearner(model::XgbLearnerOptions options, Aggregate aggregate, int knn_k = 10)
      : options_(options), xgb_(options), aggregate_(aggregate), knn_k_(knn_k) {}
  std::string name() const override { return "xgb_reg"; }
  absl::Status Fit(const model::Dataset& data) override;
  absl::Status Predict(const float* task_x, const std::vector<model::CandidateRef>& candidates,
                       std::vector<model::LogPrediction>* out) const override;
  // Name of the learner that ranks ("xgb_reg", "xgb_rank", "knn", "sbs" or "ens").
  const std::string& chosen() const { return chosen_; }
  bool uses_sbs() const { return chosen_ == "sbs"; }
  // Inner out-of-fold cost per candidate learner, in the aggregate's unit (mean cost or mean log regret).
  const std::vector<std::pair<std::string, double>>& inner_costs() const { return inner_costs_; }

 private:
  std::unique_ptr<model::Learner> Make(const std::string& name) const;
  model::XgbLearnerOptions options_;
  model::XgbLearner xgb_;
  Aggregate aggregate_;
  int knn_k_;
  std::unique_ptr<model::Learner> ranker_;  // null when the regression ranks
  // "ens": the regression's, the pairwise ranker's and kNN's ranks averaged (members_ = ranker and kNN).
  static constexpr size_t kEnsembleMembers = 3;  // xgb_reg, xgb_rank, knn: the first three inner candidates
  std::vector<std::unique_ptr<model::Learner>> members_;
  std::string chosen_ = "xgb_reg";
  std::vector<std::pair<std::string, double>> inner_costs_;
};

// Rows of the tasks for which keep(task) holds, with tasks renumbered compactly (`old_task` maps back).
model::Dataset SubsetByTasks(const model::Dataset& d, const std::vector<bool>& keep, std::vector<uint32_t>* old_task);

// Per strategy: aggregate cost over the given tasks (helper shared by SBS and kNN).
std::vector<std::pair<uint64_t, double>> AggregateByStrategy(const model::Dataset& data, Aggregate aggregate);

}  // namespace accelsel::eval

#endif  // ACCELSEL_EVAL_BASELINES_H_
