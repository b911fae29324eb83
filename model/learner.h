// Learners behind one interface: each is fitted on a Dataset of (task, strategy, log cost) rows and then scores
// the candidates of a task it may never have seen. Lower predicted log cost = better; maximised objectives are
// stored as -log(value) by the caller, so every learner only ever minimises.
#ifndef ACCELSEL_MODEL_LEARNER_H_
#define ACCELSEL_MODEL_LEARNER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/xgb.h"

namespace accelsel::model {

struct Dataset {
  size_t task_dim = 0;
  size_t strat_dim = 0;
  std::vector<float> task_x;      // n_tasks × task_dim
  std::vector<float> strat_x;     // n_strats × strat_dim
  std::vector<uint64_t> strat_key;  // identity of each strategy (for SBS / kNN)
  struct Row {
    uint32_t task;
    uint32_t strat;
    float y;  // log cost (minimise)
  };
  std::vector<Row> rows;
  // When set, the tasks and strategies are those of *features (task_x, strat_x and strat_key here stay empty):
  // other rows over the same encoded features without a copy of them (MetaModel's ranking heads).
  const Dataset* features = nullptr;

  const Dataset& f() const { return features != nullptr ? *features : *this; }
  size_t num_tasks() const { return task_dim == 0 ? 0 : f().task_x.size() / task_dim; }
  size_t num_strats() const { return strat_dim == 0 ? f().strat_key.size() : f().strat_x.size() / strat_dim; }
  const float* task(uint32_t t) const { return f().task_x.data() + size_t{t} * task_dim; }
  const float* strat(uint32_t s) const { return f().strat_x.data() + size_t{s} * strat_dim; }
};

struct CandidateRef {
  uint64_t key = 0;
  const float* x = nullptr;  // strat_dim floats
};

// In log-cost space. lo/hi = NaN when the learner has no interval.
struct LogPrediction {
  double mean = 0;
  double lo = 0;
  double hi = 0;
  double score = kNoScore;  // what to rank by when it differs from `mean` (AutoLearner falling back to SBS)
  static constexpr double kNoScore = -1e308;
  double rank_score() const { return score == kNoScore ? mean : score; }
};

class Learner {
 public:
  virtual ~Learner() = default;
  virtual std::string name() const = 0;
  virtual absl::Status Fit(const Dataset& data) = 0;
  // `task_x` has the fitted task_dim floats. Must be callable concurrently once fitted.
  virtual absl::Status Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                               std::vector<LogPrediction>* out) const = 0;
};

// Gradient-boosted trees over (task ⊕ strategy) features.
struct XgbLearnerOptions {
  enum class Mode { kRegression, kPairwise };
  Mode mode = Mode::kRegression;
  XgbParams params;
  // Intervals: residual quantiles of out-of-fold predictions (folds grouped by task, so the residuals are those
  // of contexts the model has not seen). 0 or 1 disables intervals.
  int interval_folds = 3;
  double coverage = 0.8;
  // Interval (and grouped novelty) calibration uses the rows of a hash-chosen share of the tasks, about this
  // many rows in all; 0 = every row. Residual quantiles need thousands of rows, not millions, and each fold
  // model costs as much as the final fit. Fold models trained on fewer rows than the final model err a little
  // more, so a cap errs towards wider intervals.
  size_t calibration_max_rows = 0;
  // The booster itself is fitted on the rows of a hash-chosen share of the tasks, about this many rows; 0 = all.
  // Boosting time is linear in rows (100 rounds over 160 features: ~0.07 ms of CPU per row), and on the
  // benchmark's synthetic telemetry the held-out error stops improving well before 250k rows (docs/BENCHMARKS.md).
  size_t max_fit_rows = 0;
  // Hand 0/1 indicator columns to XGBoost as sparse (IndicatorColumns, XgbBooster::TrainFromBlocks): ~1.5× less
  // boosting time, but off by default — the leave-one-hardware-out evaluation lost top-1 (0.712 -> 0.694) and
  // interval coverage (0.80 -> 0.74) with it (docs/BENCHMARKS.md, "Training cost").
  bool sparse_indicators = false;
};

class XgbLearner : public Learner {
 public:
  explicit XgbLearner(XgbLearnerOptions options) : options_(options) {}
  std::string name() const override;
  absl::Status Fit(const Dataset& data) override;
  absl::Status Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                       std::vector<LogPrediction>* out) const override;

  // Persistence (used inside MetaModel blobs).
  absl::StatusOr<std::string> Serialize() const;
  static absl::StatusOr<std::unique_ptr<XgbLearner>> Deserialize(std::string_view bytes);

  double residual_lo() const { return residual_lo_; }
  double residual_hi() const { return residual_hi_; }
  // Residual quantiles (lo, hi) at the learner's coverage when whole groups of tasks are held out (e.g. every
  // task of one model): the interval to use for a context whose group was never seen. Trains `folds` extra
  // boosters. NotFound when the groups do not allow two folds.
  absl::StatusOr<std::pair<double, double>> GroupedResidualQuantiles(const Dataset& data,
                                                                     const std::vector<uint64_t>& task_group,
                                                                     int folds) const;
  // Out-of-fold prediction of each training row (NaN where none), kept from the interval folds so that callers
  // can compare the model with alternatives on unseen tasks at no extra training cost.
  const std::vector<float>& oof_predictions() const { return oof_; }

 private:
  XgbLearnerOptions options_;
  size_t task_dim_ = 0, strat_dim_ = 0;
  std::unique_ptr<XgbBooster> booster_;
  double residual_lo_ = 0, residual_hi_ = 0;
  bool has_interval_ = false;
  std::vector<float> oof_;
};

// How SBS and kNN aggregate a strategy's costs over tasks.
enum class Aggregate {
  kLogRegret,  // mean of (log cost − best log cost of that task): geometric-mean slowdown; copes with sparse data
  kRawMean,    // mean of cost (e.g. PAR10): what a runtime-sum metric rewards
};

// ISAC-like: the k nearest training tasks (standardised features, fitted on training tasks only) vote with
// their aggregate cost per strategy.
class KnnLearner : public Learner {
 public:
  KnnLearner(int k, Aggregate aggregate) : k_(k), aggregate_(aggregate) {}
  std::string name() const override { return "knn"; }
  absl::Status Fit(const Dataset& data) override;
  absl::Status Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                       std::vector<LogPrediction>* out) const override;

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
class SbsLearner : public Learner {
 public:
  explicit SbsLearner(Aggregate aggregate) : aggregate_(aggregate) {}
  std::string name() const override { return "sbs"; }
  absl::Status Fit(const Dataset& data) override;
  absl::Status Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                       std::vector<LogPrediction>* out) const override;
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
class AutoLearner : public Learner {
 public:
  AutoLearner(XgbLearnerOptions options, Aggregate aggregate, int knn_k = 10)
      : options_(options), xgb_(options), aggregate_(aggregate), knn_k_(knn_k) {}
  std::string name() const override { return "xgb_reg"; }
  absl::Status Fit(const Dataset& data) override;
  absl::Status Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                       std::vector<LogPrediction>* out) const override;
  // Name of the learner that ranks ("xgb_reg", "xgb_rank", "knn", "sbs" or "ens").
  const std::string& chosen() const { return chosen_; }
  bool uses_sbs() const { return chosen_ == "sbs"; }
  // Inner out-of-fold cost per candidate learner, in the aggregate's unit (mean cost or mean log regret).
  const std::vector<std::pair<std::string, double>>& inner_costs() const { return inner_costs_; }

 private:
  std::unique_ptr<Learner> Make(const std::string& name) const;
  XgbLearnerOptions options_;
  XgbLearner xgb_;
  Aggregate aggregate_;
  int knn_k_;
  std::unique_ptr<Learner> ranker_;  // null when the regression ranks
  // "ens": the regression's, the pairwise ranker's and kNN's ranks averaged (members_ = ranker and kNN).
  static constexpr size_t kEnsembleMembers = 3;  // xgb_reg, xgb_rank, knn: the first three inner candidates
  std::vector<std::unique_ptr<Learner>> members_;
  std::string chosen_ = "xgb_reg";
  std::vector<std::pair<std::string, double>> inner_costs_;
};

// Rows of the tasks for which keep(task) holds, with tasks renumbered compactly (`old_task` maps back).
Dataset SubsetByTasks(const Dataset& d, const std::vector<bool>& keep, std::vector<uint32_t>* old_task);

// Columns holding only 0 and 1 in every task (task columns) or strategy (strategy columns) of `d`: indicators
// whose zeros boosting may treat as missing (XgbBooster::TrainFromBlocks).
std::vector<bool> IndicatorColumns(const Dataset& d);

// Per strategy: aggregate cost over the given tasks (helper shared by SBS and kNN).
std::vector<std::pair<uint64_t, double>> AggregateByStrategy(const Dataset& data, Aggregate aggregate);

// Residual quantile helper (exposed for tests): the q-quantile of `v` (linear interpolation), v is reordered.
double Quantile(std::vector<double>* v, double q);

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_LEARNER_H_
