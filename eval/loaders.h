// Builders of evaluation Problems from files: a generic CSV (task / strategy / target columns), an ASlib
// scenario folder, and RunRecords (the product's own feature path, used for LLM-Inference-Bench).
#ifndef ACCELSEL_EVAL_LOADERS_H_
#define ACCELSEL_EVAL_LOADERS_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "eval/evaluator.h"
#include "model/meta_model.h"
#include "model/types.h"
#include "util/csv.h"

namespace accelsel::eval {

struct LoadedProblem {
  Problem problem;
  ProblemFeatures features;
};

struct CsvSpec {
  std::vector<std::string> task_cols;
  std::vector<std::string> strategy_cols;
  std::string target_col;
  bool maximize = false;
  std::string group_col;  // empty = none
};
absl::StatusOr<LoadedProblem> LoadCsvProblem(const util::CsvTable& table, const CsvSpec& spec);

// ASlib scenario folder: description.txt, algorithm_runs.arff, feature_values.arff, cv.arff and, when present,
// feature_runstatus.arff and feature_costs.arff. Only features of the default feature steps are used. The first
// performance measure of description.txt is scored: a runtime measure by PAR10 with the cutoff, and the cost of
// the default feature steps is what a feature-based selector pays; a solution-quality measure on its own value
// (minimised or maximised as described), with no cutoff penalty and no feature cost (Problem::quality).
absl::StatusOr<LoadedProblem> LoadAslibProblem(const std::string& dir);

// Minimal parse of ASlib's description.txt (a YAML subset), exposed for tests. Lists may be written in any YAML
// form ("- a" items at column 0 or indented, or inline "[a, b]"). The first performance measure is the one scored;
// `maximize` and `performance_type` are that measure's.
struct AslibDescription {
  double cutoff = 0;  // algorithm_cutoff_time; 0 when absent or '?'
  bool maximize = false;
  std::string performance_type = "runtime";       // "runtime" or "solution_quality"
  std::vector<std::string> performance_measures;  // column names in algorithm_runs.arff (e.g. runtime, PAR10)
  std::vector<std::string> performance_types;     // one per measure, as listed
  std::vector<bool> maximize_each;                // one per measure, as listed
  std::vector<std::string> default_steps;
  std::map<std::string, std::vector<std::string>> provides;  // step -> features
};
AslibDescription ParseAslibDescription(absl::string_view text);

// RunRecords grouped into tasks (same context) and candidates (strategy ids), value = mean e2e latency of OK
// runs. `group_by` is "model", "hardware" or "" (Task::group). Keeps the records for the model::MetaModel factory.
struct RecordProblem {
  Problem problem;
  ProblemFeatures features;  // the product's encoding (model::EncodeContext / model::EncodeStrategy)
  std::vector<model::RunRecord> records;
  std::vector<std::vector<uint32_t>> task_records;  // record indices per task
  std::vector<model::Strategy> strategies;          // by strategy index
};
// `catalog` gives the components of strategy ids (ids not in it are parsed with ComponentsFromId).
absl::StatusOr<RecordProblem> BuildRecordProblem(std::vector<model::RunRecord> records, const std::string& group_by,
                                                 const std::vector<model::Strategy>& catalog = {});

// The raw columns of the records, for the plain baseline on the product path (no descriptors, no engineered
// features): per task accelerator, device count, model, prompt tokens and batch size, typed by TabularEncoder
// (numeric, or one-hot); per strategy a one-hot of its id.
ProblemFeatures RawColumnFeatures(const RecordProblem& rp);

// "accelsel" on the product path: model::MetaModel::Train on the training tasks' records, model::MetaModel::Predict on
// a test task's context and candidates.
SelectorFactory MetaModelFactory(const RecordProblem& rp, const model::TrainOptions& options);

}  // namespace accelsel::eval

#endif  // ACCELSEL_EVAL_LOADERS_H_
