// Learners behind one interface: each is fitted on a Dataset of (task, strategy, log cost) rows and then scores
// the candidates of a task it may never have seen. Lower predicted log cost = better; maximised objectives are
// stored as -log(value) by the caller, so every learner only ever minimises.
#ifndef ACCELSEL_MODEL_LEARNER_H_
#define ACCELSEL_MODEL_LEARNER_H_

#include <cstdint>
#include <limits>
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
  std::vector<float> task_x;        // n_tasks × task_dim
  std::vector<float> strat_x;       // n_strats × strat_dim
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

  const XgbLearnerOptions& options() const { return options_; }
  double residual_lo() const { return residual_lo_; }
  double residual_hi() const { return residual_hi_; }
  // RelativeResidualSd of the interval folds; NaN without intervals (and in blobs written before it existed).
  double relative_sd() const { return relative_sd_; }
  // Residual quantiles (lo, hi) at the learner's coverage when whole groups of tasks are held out (e.g. every
  // task of one model): the interval to use for a context whose group was never seen. Trains `folds` extra
  // boosters. NotFound when the groups do not allow two folds.
  absl::StatusOr<std::pair<double, double>> GroupedResidualQuantiles(const Dataset& data,
                                                                     const std::vector<uint64_t>& task_group,
                                                                     int folds) const;
  // The same held-out groups, also scored: the quantiles and the mean |residual| (mean |log error|). Two datasets
  // over the same tasks, rows in the same order and the same groups are held out on the same rows, so their
  // scores compare paired (which target carries over to unseen groups better).
  struct GroupedResiduals {
    double lo = std::numeric_limits<double>::quiet_NaN();
    double hi = std::numeric_limits<double>::quiet_NaN();
    double mean_abs = std::numeric_limits<double>::quiet_NaN();
  };
  absl::StatusOr<GroupedResiduals> ScoreGroupedResiduals(const Dataset& data, const std::vector<uint64_t>& task_group,
                                                         int folds) const;
  // Out-of-fold prediction of each training row (NaN where none), kept from the interval folds so that callers
  // can compare the model with alternatives on unseen tasks at no extra training cost.
  const std::vector<float>& oof_predictions() const { return oof_; }

 private:
  XgbLearnerOptions options_;
  size_t task_dim_ = 0, strat_dim_ = 0;
  std::unique_ptr<XgbBooster> booster_;
  double residual_lo_ = 0, residual_hi_ = 0;
  double relative_sd_ = std::numeric_limits<double>::quiet_NaN();
  bool has_interval_ = false;
  std::vector<float> oof_;
};

// Columns holding only 0 and 1 in every task (task columns) or strategy (strategy columns) of `d`: indicators
// whose zeros boosting may treat as missing (XgbBooster::TrainFromBlocks).
std::vector<bool> IndicatorColumns(const Dataset& d);

// Fold of a task for inner cross-validation and interval residuals, from the task's index and the seed: grouped by
// task so that held-out residuals are those of unseen contexts.
int InnerFold(uint32_t task, uint64_t seed, int folds);

// Residual quantile helper (exposed for tests): the q-quantile of `v` (linear interpolation), v is reordered.
double Quantile(std::vector<double>* v, double q);

// How far the model errs on one strategy against the others of the same context, as a log standard deviation: the
// spread of out-of-fold residuals (`oof` per row of `d`, NaN where none) around their context's mean, one value per
// (context, strategy) cell, among the cells that compete for first place (the best-predicted quarter of each
// context, at least two), from the quantiles at `coverage`. An error shared by every strategy of a context (the
// context is harder than the model thinks) cancels when strategies are compared, and errors on strategies predicted
// far from the best do not decide which is best; this is the uncertainty that does, usually a fraction of the
// interval's. NaN with fewer than 10 such cells.
double RelativeResidualSd(const Dataset& d, const std::vector<float>& oof, double coverage);

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_LEARNER_H_
