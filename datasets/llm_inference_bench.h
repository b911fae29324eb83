// Import of Argonne's LLM-Inference-Bench main table (throughput_all_results.csv) as plain RunRecords,
// with model and accelerator descriptors filled in from the tables in data/descriptors/.
#ifndef ACCELSEL_DATASETS_LLM_INFERENCE_BENCH_H_
#define ACCELSEL_DATASETS_LLM_INFERENCE_BENCH_H_

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/types.h"

namespace accelsel::datasets {

// node_id of every imported run.
inline constexpr char kLlmBenchNodeId[] = "llm-inference-bench";

// One accelerator row of data/descriptors/accelerators.csv. `label` is the name as written in a
// benchmark table; several labels may share one canonical name (label variants of one device family).
struct AcceleratorEntry {
  std::string label;
  model::HardwareDescriptor descriptor;  // accelerator = canonical name; count = 0
  std::string source;
};

// Descriptor tables (data/descriptors/models.csv and accelerators.csv).
struct DescriptorTables {
  std::map<std::string, model::ModelDescriptor> models;  // by model name
  std::map<std::string, AcceleratorEntry> accelerators;  // by label and by canonical name

  // nullptr when unknown. Accepts a label or a canonical name.
  const AcceleratorEntry* FindAccelerator(const std::string& name) const;
  const model::ModelDescriptor* FindModel(const std::string& name) const;
  // For names typed by people (the server fills a request's context by name): the exact name first, else the one
  // entry whose name equals it ignoring ASCII case. nullptr when none does, or when several entries that differ
  // only in case and hold different values do (no guess between them). The import keeps exact matching: the
  // bench's names are written one way.
  const AcceleratorEntry* MatchAccelerator(const std::string& name) const;
  const model::ModelDescriptor* MatchModel(const std::string& name) const;
};

// Reads models.csv and accelerators.csv from `dir`. Columns are found by header name, so extra columns
// (e.g. `note`) are allowed. A missing file or column, or a malformed number, is an error naming it.
absl::StatusOr<DescriptorTables> LoadDescriptorTables(const std::string& dir);

// What an import did, for the operator. Counts are in rows of the CSV unless named otherwise.
struct LlmBenchImportStats {
  size_t rows_read = 0;
  size_t runs = 0;                   // distinct runs returned
  size_t identical_rows_folded = 0;  // rows whose whole content repeats an earlier row: one run kept
  // Rows whose task + framework (Hardware as written, Num of Hardware, Framework, Model, Input Output Length,
  // Batch Size) repeat an earlier row but whose measurements differ: repeated measurements, kept as separate
  // runs with distinct run_ids. The _canonical count compares canonical accelerator names instead, so it
  // also counts repeats hidden behind label variants.
  size_t repeated_task_rows = 0;
  size_t repeated_task_rows_canonical = 0;
  size_t rows_skipped = 0;                // malformed rows (bad number, wrong column count); see skip_reasons
  std::vector<std::string> skip_reasons;  // first few, "line N: why"
  size_t label_variant_rows = 0;          // rows whose hardware label was mapped to a different canonical name
  std::map<std::string, std::string> label_mapping;  // label -> canonical name, for labels that changed
  size_t rows_unknown_model = 0;                     // imported with an empty model descriptor (name only)
  size_t rows_unknown_accelerator = 0;  // imported with an empty hardware descriptor (label and count only)
  std::set<std::string> unknown_models;
  std::set<std::string> unknown_accelerators;
};

// Maps each row of LLM-Inference-Bench's main table to a model::RunRecord:
//   context = model descriptor of Model, hardware descriptor of Hardware (canonical name) x Num of Hardware,
//             workload prompt = output = Input Output Length, batch = Batch Size;
//   strategy_id = NormalizeFramework(Framework); metrics e2e_latency_ms = Latency * 1000,
//   throughput_tokens_per_s = Throughput; status OK; node_id kLlmBenchNodeId; time 0 (server receive time);
//   run_id = "llmib-" + a stable 64-bit hash of the row's fields as written, so a re-import dedups.
// `descriptors_dir` empty = no descriptor tables: every row counts as unknown model and accelerator.
// `stats` may be null. A missing file or a header without the expected columns is an error.
absl::StatusOr<std::vector<model::RunRecord>> LoadLlmInferenceBench(const std::string& csv_path,
                                                                    const std::string& descriptors_dir,
                                                                    LlmBenchImportStats* stats);

// "vLLM" -> "vllm", "TensorRT-LLM" -> "tensorrt-llm", "Deepspeed-MII" -> "deepspeed-mii", ...
// Unknown labels are lower-cased with characters outside the strategy id alphabet replaced by '-'.
std::string NormalizeFramework(const std::string& label);

// The strategy behind a normalised framework id: components {engine=<id>} and a description.
model::Strategy LlmBenchStrategy(const std::string& strategy_id);

// The distinct strategies used by `runs`, sorted by id, for registration in the catalogue.
std::vector<model::Strategy> LlmBenchStrategies(const std::vector<model::RunRecord>& runs);

}  // namespace accelsel::datasets

#endif  // ACCELSEL_DATASETS_LLM_INFERENCE_BENCH_H_
