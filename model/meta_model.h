// MetaModel: the learned predictor the server serves and the offline evaluator measures. Trained from plain
// RunRecords: one XGBoost head per objective on log(value) over (context ⊕ strategy) features with out-of-fold
// residual intervals, a failure head (OOM/TIMEOUT/CRASH/NOT_APPLICABLE) and a peak-memory head. Immutable once
// built; persisted as a self-checking blob.
//
// Thread safety: a MetaModel is built whole by Train or Deserialize on one thread and never changes afterwards, so
// every const method (Predict, Evaluate, Serialize, the accessors) may be called from any number of threads at once
// on one instance; the server serves it to every SelectAccelerator call at the same time. The only state a const
// call writes is behind locks of its own: the strategy-encoding cache (StrategyEncodingCache, its mutex) and an
// uncompiled booster's XGBoost handle (XgbBooster's mutex; the compiled forests are read-only). A new version is a
// new object: the server publishes it by pointer swap (server/snapshot.h) and a request keeps the instance it took
// until it returns. Ownership: the model owns its boosters and cache; TrainOptions and the runs are only read.
#ifndef ACCELSEL_MODEL_META_MODEL_H_
#define ACCELSEL_MODEL_META_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/features.h"
#include "model/learner.h"
#include "model/predictor.h"
#include "model/strategy_encoding_cache.h"
#include "model/types.h"

namespace accelsel::model {

struct TrainOptions {
  // Version stamped on the trained model (the server assigns versions; 0 = unversioned).
  uint64_t version = 0;
  // Boosting parameters shared by every head. Defaults are general (not tuned to one dataset): shallow-ish
  // trees, moderate learning rate, row/column subsampling.
  XgbParams xgb;
  // Out-of-fold residual intervals: number of folds (grouped by task context); 0 disables intervals.
  // Fewer folds train each fold model on less data, so residuals (and intervals) come out wider than nominal.
  int interval_folds = 4;
  double interval_coverage = 0.8;
  // Objectives to train heads for (cost uses the e2e head). The peak-memory head is trained whenever runs report
  // peak memory and `train_peak_memory` is set.
  std::vector<Objective> objectives = {Objective::kE2eLatency, Objective::kTtft, Objective::kTpot,
                                       Objective::kThroughput};
  bool train_peak_memory = true;
  // Learn log(value) − roofline baseline instead of log(value) where the descriptors allow a baseline.
  bool roofline_baseline = true;
  // Wider intervals for a context whose model or accelerator was never seen: residual quantiles with every task
  // of a model (or of an accelerator) held out together, over this many folds; 0 disables (then such contexts
  // get the ordinary intervals, which are too narrow for them).
  int novelty_folds = 3;
  // With the roofline baseline and novelty folds: also score the e2e latency head on log(value) without the baseline
  // on the same held-out models / accelerators, and serve it for unseen models / accelerators where it erred less
  // there (MetaModel::raw_heads_). Costs 6 fold models on the calibration budget, and one more fit where it wins.
  bool raw_heads_for_novel = true;
  // Row budgets that keep a retrain on 1M runs within a minute (docs/BENCHMARKS.md, "Training cost"). Each is met
  // with the rows of a hash-chosen share of the task contexts (whole contexts); 0 = every row.
  // Final fit of each head, of its ranking head and of the failure classifier (XgbLearnerOptions::max_fit_rows).
  // 150k: with two boosters at once their working sets add up (XGBoost's column matrix is ~1 KB per row), and
  // held-out error is nearly flat above ~100k rows (docs/BENCHMARKS.md, "Training cost").
  size_t max_fit_rows = 150000;
  // Interval and novelty calibration: the fold models above (XgbLearnerOptions::calibration_max_rows).
  size_t calibration_max_rows = 30000;
  // See XgbLearnerOptions::sparse_indicators (applies to the failure classifier too).
  bool sparse_indicators = false;
  // Also train, per objective head, a pairwise ranking head (XGBoost rank:pairwise, groups = contexts) over the
  // same features: it fills Prediction::rank_score, which orders the model-layer candidates in the Selector,
  // while values and intervals still come from the regression: pairwise ranking picks the fastest strategy more
  // often than ranking by regressed values (docs/EVALUATION.md).
  bool rank_heads = true;
  // At prediction, name tokens and categorical values never seen in training are encoded as absent instead of
  // being hashed into a bucket that a seen name owns (see EncodeContext with a vocabulary).
  bool drop_unseen_tokens = true;
  // A head (objective) is trained only with at least this many OK runs reporting its metric.
  size_t min_rows_per_head = 8;
  // The failure classifier is trained with at least this many failed and this many OK runs; otherwise a
  // smoothed base rate is used.
  size_t min_failures_for_classifier = 5;
  // Boosters trained at once (each on one XGBoost thread): the final fit, the interval and novelty folds and the
  // ranking head of a head, and the failure classifier, are independent. The model is the same for any value.
  int threads = 2;
  // Components of strategy ids seen in the runs (RunRecord carries only the id). Ids not listed are parsed
  // (ComponentsFromId).
  std::vector<Strategy> catalog;
};

struct HoldoutMetrics {
  double mape = kMissing;        // mean |pred − truth| / truth of e2e latency over OK holdout runs
  double top1 = kMissing;        // share of holdout contexts (≥ 2 strategies) whose fastest was predicted fastest
  double coverage80 = kMissing;  // share of OK holdout runs inside the nominal interval
  uint64_t rows = 0;             // OK holdout runs with e2e latency
  uint64_t contexts = 0;         // contexts counted in top1
  // |log(pred / truth)| of each holdout run, by its index in the holdout (NaN where not scored), and the run's
  // context, so two models scored on the same holdout can be compared run by run (PairedLogErrorDifference).
  std::vector<double> row_abs_log_error;
  std::vector<uint64_t> row_context;
};

// Mean over the runs both scored of (a's |log error| − b's), with its standard error clustered by context (the runs
// of one context are not independent). Unlike a difference of MAPEs, it is not ruled by a few runs that one model
// over-predicts many times over, and it is paired, so the noise both share cancels.
struct PairedDifference {
  double mean = kMissing;
  double se = kMissing;
  uint64_t rows = 0;
};
// `only` (by holdout index; null = every run) restricts the comparison to some runs, e.g. the most recent.
PairedDifference PairedLogErrorDifference(const HoldoutMetrics& a, const HoldoutMetrics& b,
                                          const std::vector<bool>* only = nullptr);

class MetaModel : public Predictor {
 public:
  static constexpr char kBlobMagic[9] = "ACSLMETA";
  // 2: known names and novelty intervals added. 3: ranking heads appended (a format-2 blob is still read, without
  // ranking heads). 4: each regression head's relative residual spread (XgbLearner::relative_sd; older blobs are
  // read without it). 5: the heads without baseline for unseen models / accelerators (raw_heads_; older blobs are
  // read without them). Format 1 is refused, never misread.
  static constexpr uint32_t kBlobFormat = 5;
  static constexpr uint32_t kOldestBlobFormat = 2;

  static absl::StatusOr<std::unique_ptr<MetaModel>> Train(const std::vector<RunRecord>& runs,
                                                          const TrainOptions& options);
  absl::StatusOr<std::string> Serialize() const;
  // Refuses (with a Status) a blob whose magic, format, length or checksum is wrong or whose sections are
  // malformed. `version` becomes the model's version.
  static absl::StatusOr<std::unique_ptr<MetaModel>> Deserialize(std::string_view blob, uint64_t version);

  // Scores the model on held-out runs. Takes no lock that Predict takes (it leaves the encoding cache alone), so a
  // low-priority thread may score the very instance that serves without making a request wait for it; the scores
  // are those Predict would give.
  HoldoutMetrics Evaluate(const std::vector<RunRecord>& holdout) const;

  // Predictor.
  uint64_t version() const override { return version_; }
  void Predict(const TaskContext& context, const std::vector<const Strategy*>& strategies, Objective objective,
               std::vector<Prediction>* out) const override;

  uint64_t training_rows() const { return training_rows_; }
  double interval_coverage() const { return coverage_; }
  // True when a head exists for the objective (cost uses the e2e head).
  bool HasObjective(Objective objective) const;
  // True when a ranking head orders the candidates of the objective.
  bool HasRankHead(Objective objective) const;
  // True when some head serves unseen models or accelerators without the roofline baseline (raw_heads_).
  bool HasHeadsWithoutBaseline() const;

  // The regression heads, by what they predict; the numbers are their order in the blob (and index the arrays).
  enum Head : uint32_t { kE2e = 0, kTtft = 1, kTpot = 2, kThroughput = 3, kPeakMemory = 4, kNumHeads = 5 };

 private:
  MetaModel() = default;
  static Head HeadFor(Objective o);
  // The strategies' features, from the model's encoding cache (`cached`, the serving path) or encoded afresh without
  // touching the cache (the evaluation path, so that scoring a serving model takes no lock its requests take).
  void EncodeStrategies(const std::vector<const Strategy*>& strategies, bool cached, std::vector<float>* x,
                        std::vector<CandidateRef>* refs) const;
  void PredictWith(const TaskContext& context, const std::vector<const Strategy*>& strategies, Objective objective,
                   bool cached_encodings, std::vector<Prediction>* out) const;

  double Baseline(const TaskContext& c, Head head) const;
  // Trains rank_heads_[head] on the mean target of each (context, strategy) cell of `d` (contexts with at least
  // two strategies only). Leaves the head empty when no context has two.
  absl::Status TrainRankHead(Head head, const Dataset& d, const XgbParams& params, size_t max_fit_rows);

  uint64_t version_ = 0;
  bool roofline_baseline_ = true;
  uint64_t training_rows_ = 0;
  double coverage_ = 0.8;
  std::unique_ptr<XgbLearner> heads_[kNumHeads];
  std::unique_ptr<XgbLearner> rank_heads_[kNumHeads];  // pairwise ranking per objective head (none for memory)
  // Residual quantiles (lo, hi) of each head for an unseen model / an unseen accelerator; NaN = not measured.
  std::pair<double, double> novel_model_[kNumHeads];
  std::pair<double, double> novel_accelerator_[kNumHeads];
  // Per head (the e2e head only, TrainOptions::raw_heads_for_novel), a regression of log(value) itself, without the
  // roofline baseline. For a context whose model (kRawForNovelModel) or accelerator (kRawForNovelAccelerator) was
  // never seen, where holding out whole models / accelerators in training showed it errs less there, it sets the
  // level of the predictions (their mean over the candidates asked) and the head above the differences between
  // them: the baseline's device and model terms are exact for hardware whose efficiency the model has seen, and can
  // mislead for hardware it has not. Its own grouped residual quantiles give those contexts' intervals. Absent when
  // the baseline head won both.
  static constexpr uint32_t kRawForNovelModel = 1, kRawForNovelAccelerator = 2;
  std::unique_ptr<XgbLearner> raw_heads_[kNumHeads];
  uint32_t raw_for_novel_[kNumHeads] = {};
  std::pair<double, double> raw_novel_model_[kNumHeads];
  std::pair<double, double> raw_novel_accelerator_[kNumHeads];
  std::set<std::string> known_models_, known_accelerators_;  // lower-cased names seen in training
  bool use_vocabulary_ = false;  // encode contexts for prediction with unseen tokens dropped
  ContextVocabulary vocabulary_;
  std::unique_ptr<XgbBooster> failure_classifier_;
  double failure_base_rate_ = 0;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> catalog_;
  StrategyEncodingCache strategy_encodings_;  // filled by Predict; per model instance
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_META_MODEL_H_
