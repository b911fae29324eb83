// The measured table a simulation replays: tasks (one context each) with the true value of every strategy
// measured there, built from LLM-Inference-Bench (the product mapping) or from any CSV the way `accelsel eval`
// reads one. Only tasks with at least two strategies are kept, as in the offline evaluation.
#ifndef ACCELSEL_SIM_TABLE_H_
#define ACCELSEL_SIM_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"
#include "model/types.h"

namespace accelsel::sim {

struct SimTask {
  std::string name;
  v1::TaskContext context;        // what a node sends for this task
  uint32_t hardware = 0;          // index into SimTable::hardware
  std::vector<double> value;      // by strategy index: geometric mean of the table's rows; NaN = not measured
  std::vector<uint32_t> present;  // strategy indices with a value, ascending
  bool Has(uint32_t strategy) const { return !model::IsMissing(value[strategy]); }
};

struct SimTable {
  std::vector<model::Strategy> strategies;  // sorted by id
  std::vector<std::string> hardware;        // accelerator names, sorted
  std::vector<SimTask> tasks;
  bool maximize = false;  // true: larger values are better (throughput)
  v1::Objective objective = v1::OBJECTIVE_E2E_LATENCY;
  size_t rows_used = 0;      // rows that gave a value
  size_t rows_skipped = 0;   // rows without a usable value
  size_t tasks_skipped = 0;  // tasks with fewer than two strategies

  // The strategy present in the most tasks (ties: the smaller id): the fixed "default" baseline.
  uint32_t MostCommonStrategy() const;
  // -1 when unknown.
  int StrategyIndex(const std::string& id) const;
  int HardwareIndex(const std::string& name) const;
};

// LLM-Inference-Bench's main table through datasets/llm_inference_bench.h (contexts with descriptors, one strategy per
// framework); values are e2e latency in ms, minimised.
absl::StatusOr<SimTable> LoadLlmBenchTable(const std::string& csv_path, const std::string& descriptors_dir);

// A generic CSV in the form `accelsel eval --csv` takes. The task is the combination of the task columns (and of
// the hardware and model columns); `hardware_col` and `model_col` become hardware.accelerator and model.name
// (empty: one hardware "unspecified" / model "unspecified"); other task columns go to context.extra, numeric
// ones as they are and categorical ones as a stable hash in [0, 1). The strategy id joins the strategy columns'
// values with '/', each value lower-cased with characters outside the id alphabet replaced by '-'.
struct CsvTableSpec {
  std::string path;
  std::vector<std::string> task_cols;
  std::vector<std::string> strategy_cols;
  std::string target_col;
  bool maximize = false;
  std::string hardware_col;
  std::string model_col;
};
absl::StatusOr<SimTable> LoadCsvTable(const CsvTableSpec& spec);

// Groups records (OK runs with a positive value of the objective's metric) into tasks by context. Exposed for
// tests and for callers that build their records themselves.
absl::StatusOr<SimTable> TableFromRecords(const std::vector<model::RunRecord>& records,
                                          const std::vector<model::Strategy>& catalog, bool maximize);

}  // namespace accelsel::sim

#endif  // ACCELSEL_SIM_TABLE_H_
