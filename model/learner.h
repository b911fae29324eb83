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

  size_t num_tasks() const { return task_dim == 0 ? 0 : task_x.size() / task_dim; }
  size_t num_strats() const { return strat_dim == 0 ? strat_key.size() : strat_x.size() / strat_dim; }
  const float* task(uint32_t t) const { return task_x.data() + size_t{t} * task_dim; }
  const float* strat(uint32_t s) const { return strat_x.data() + size_t{s} * strat_dim; }
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

 private:
  XgbLearnerOptions options_;
  size_t task_dim_ = 0, strat_dim_ = 0;
  std::unique_ptr<XgbBooster> booster_;
  double residual_lo_ = 0, residual_hi_ = 0;
  bool has_interval_ = false;
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

// Per strategy: aggregate cost over the given tasks (helper shared by SBS and kNN).
std::vector<std::pair<uint64_t, double>> AggregateByStrategy(const Dataset& data, Aggregate aggregate);

// Residual quantile helper (exposed for tests): the q-quantile of `v` (linear interpolation), v is reordered.
double Quantile(std::vector<double>* v, double q);

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_LEARNER_H_
