// The offline evaluation engine: a selection Problem (tasks × candidate strategies with measured costs), fold
// protocols (k-fold by task, leave-one-group-out, predefined folds), selectors trained on training folds only,
// and the metrics of docs/EVALUATION.md (top1, top3, slowdown_geomean, gap_closed, PAR10, remaining_gap, MAPE,
// coverage80). Loaders for --csv, --aslib and --llm-inference-bench build Problems; see loaders.h.
#ifndef ACCELSEL_EVAL_EVALUATOR_H_
#define ACCELSEL_EVAL_EVALUATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/learner.h"
#include "model/types.h"

namespace accelsel::eval {

struct Problem {
  std::string protocol;  // filled by RunEvaluation
  std::vector<std::string> strategy_names;
  struct Entry {
    uint32_t strat = 0;
    double value = 0;  // objective in its unit (latency, PAR10 ...); > 0 unless `quality`
    bool ok = true;    // ASlib: run succeeded within the cutoff
  };
  struct Task {
    std::string name;
    std::vector<Entry> entries;
    std::string group;       // for leave-one-group-out
    int fold = -1;           // predefined fold (ASlib cv.arff), -1 = none
    double overhead = 0;     // ASlib: feature cost paid by feature-based selectors
    bool presolved = false;  // ASlib: solved while computing features
  };
  std::vector<Task> tasks;
  bool maximize = false;
  // ASlib scoring: a selector's run costs runtime + feature cost, or par_factor × cutoff when it fails or the
  // sum passes the cutoff.
  bool aslib = false;
  double cutoff = 0;
  double par_factor = 10;
  // ASlib solution-quality scenario: scored on the measure itself (any sign, minimised or maximised), with no
  // cutoff and no feature cost; learners fit the measure on its own scale (negated when maximised), SBS and kNN
  // take plain means. Mean and remaining_gap are reported as for PAR10 (key mean_measure).
  bool quality = false;
  std::string measure;         // ASlib: the scored column of algorithm_runs.arff
  uint64_t skipped_tasks = 0;  // tasks with fewer than two candidates
  uint64_t skipped_rows = 0;   // rows without a usable target
};

// A selector fitted on training tasks: scores every candidate of a test task (lower = better). `value`, `lo`
// and `hi` are predictions in the objective's unit where the selector makes them (else NaN).
struct CandidateScore {
  double score = 0;
  double value = model::kMissing;
  double lo = model::kMissing;
  double hi = model::kMissing;
};
class TrainedSelector {
 public:
  virtual ~TrainedSelector() = default;
  virtual absl::Status Score(uint32_t task, std::vector<CandidateScore>* out) const = 0;
  // False when the fitted selector ignores task features (then it pays no ASlib feature cost).
  virtual bool uses_features() const { return true; }
  // For selectors that pick a learner by inner cross-validation: the one picked ("" otherwise).
  virtual std::string chosen() const { return ""; }
};
using SelectorFactory =
    std::function<absl::StatusOr<std::unique_ptr<TrainedSelector>>(const std::vector<uint32_t>& train_tasks)>;

struct NamedSelector {
  std::string name;
  SelectorFactory factory;
  bool pays_overhead = true;  // feature-based selectors pay the ASlib feature cost
};

struct EvalOptions {
  int folds = 10;
  uint64_t seed = 1;
  bool leave_one_group_out = false;  // use Task::group
  bool predefined_folds = false;     // use Task::fold
  // Called after each selector is scored on each fold: (done, folds x selectors). Progress lines only.
  std::function<void(int done, int total)> on_step;
  // Called for every (test task, candidate) a selector scored, for the per-row dump of `accelsel eval
  // --predictions`: where the error comes from. Null = none.
  struct PredictionRow {
    const std::string* selector;
    uint32_t task;
    uint32_t strategy;
    double measured;
    const CandidateScore* score;
    bool chosen;         // the selector placed this candidate first
    bool strategy_seen;  // the strategy occurs in the training tasks of this outer fold
    int fold;
  };
  std::function<void(const PredictionRow& row)> on_prediction;
};

struct SelectorMetrics {
  double top1 = 0, top3 = 0, slowdown_geomean = 1, gap_closed = 0;
  double par10 = model::kMissing, remaining_gap = model::kMissing;  // ASlib only
  double mean_measure = model::kMissing;  // ASlib solution quality: mean of the measure (in place of par10)
  double mape = model::kMissing, coverage80 = model::kMissing;  // selectors that predict values
  // Over the rows mape averages: their median APE, and the MAPE (and coverage80) split by whether the row's
  // strategy occurs in the outer fold's training tasks. No learner can know the level of a strategy it never saw
  // (leave-one-hardware-out: an engine run on one device only), so targets apply to the seen rows. Missing when
  // there is no such row.
  double median_ape = model::kMissing;
  double mape_seen_strategies = model::kMissing, mape_unseen_strategies = model::kMissing;
  double coverage80_unseen_strategies = model::kMissing;
  uint64_t tasks = 0;
  std::map<std::string, int> ranked_by;  // folds per learner picked by inner cross-validation
};

// Leave-one-group-out: the figures of one held-out group (its own outer fold).
struct GroupMetrics {
  uint64_t tasks = 0;
  uint64_t rows = 0;                    // (task, candidate) entries of the group
  uint64_t rows_unseen_strategies = 0;  // those whose strategy no task of the other groups has
  // Every selector, random and oracle as in EvalReport::selectors; gap_closed and ASlib figures are not set.
  std::vector<std::pair<std::string, SelectorMetrics>> selectors;
};

struct EvalReport {
  uint64_t tasks = 0, skipped_tasks = 0, skipped_rows = 0, candidates = 0, folds = 0;
  double mean_candidates = 0;
  std::string protocol;
  std::string measure;                                             // ASlib: the scored performance measure
  bool maximize = false;                                           // the measure is maximised
  std::vector<std::pair<std::string, SelectorMetrics>> selectors;  // in output order
  // Leave-one-group-out only: slowdown_geomean of each selector on each held-out group.
  std::map<std::string, std::map<std::string, double>> group_slowdown;
  std::map<std::string, GroupMetrics> groups;  // leave-one-group-out only, by held-out group
  double seconds = 0;
};

absl::StatusOr<EvalReport> RunEvaluation(const Problem& problem, const std::vector<NamedSelector>& selectors,
                                         const EvalOptions& options);

// Features of a problem for the model::Dataset-based learners: one row per task and per strategy.
struct ProblemFeatures {
  size_t task_dim = 0, strat_dim = 0;
  std::vector<float> task_x;   // tasks × task_dim
  std::vector<float> strat_x;  // strategies × strat_dim
};

// Builds a factory that fits a fresh learner (from `make`) on the training tasks: y = log(value) (−log when
// maximised; ASlib PAR10 values floored at 0.01 s); for a quality problem y = value (−value when maximised).
SelectorFactory LearnerFactory(const Problem& problem, const ProblemFeatures& features,
                               std::function<std::unique_ptr<model::Learner>()> make);

// The default learner set shared by every path: "accelsel" (AutoLearner), "xgb_plain" (PlainXgbSelector on
// the same features), "xgb_rank" (pairwise ranking; not on ASlib, where it is one of accelsel's candidates),
// "knn", "sbs".
std::vector<NamedSelector> StandardSelectors(const Problem& problem, const ProblemFeatures& features, uint64_t seed);

// "xgb_plain", the plain baseline: one XGBoost regression of the (log) target on `features` with the library's
// default settings (PlainXgbOptions), no intervals, no model selection.
NamedSelector PlainXgbSelector(const Problem& problem, const ProblemFeatures& features, uint64_t seed);

std::string ReportJson(const EvalReport& report);
std::string ReportTable(const EvalReport& report);

// One report over several seeds (`reports[i]` ran with `seeds[i]`, same problem and selectors): each selector's
// numeric keys hold the mean over seeds, `<key>_sd` the sample standard deviation, `seeds` the per-seed results
// (with `seed`); ranked_by counts are summed; a key that is null in any seed is null. Top level: the first
// report's counts, `seed_values`, total seconds. `groups` (leave-one-group-out): per group and selector the same
// mean and `<key>_sd`, without per-seed values.
std::string SeedsReportJson(const std::vector<uint64_t>& seeds, const std::vector<EvalReport>& reports);
std::string SeedsReportTable(const std::vector<uint64_t>& seeds, const std::vector<EvalReport>& reports);

}  // namespace accelsel::eval

#endif  // ACCELSEL_EVAL_EVALUATOR_H_
