// Where `accelsel eval --llm-inference-bench` gets its RunRecords: the product's import mapping
// (model/llm_bench.h, the same one `accelsel import` uses) when it is part of the build, otherwise a minimal
// private mapping with built-in descriptors for the devices and models of the public table.
#ifndef ACCELSEL_MODEL_EVAL_LLM_BENCH_SOURCE_H_
#define ACCELSEL_MODEL_EVAL_LLM_BENCH_SOURCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/types.h"

namespace accelsel::model::eval {

absl::StatusOr<std::vector<RunRecord>> LoadBenchRecords(const std::string& csv_path,
                                                        const std::string& descriptors_dir);
// True when the product mapping (model/llm_bench.h) is used.
bool UsingProductBenchMapping();

// The private mapping, exposed for tests.
absl::StatusOr<std::vector<RunRecord>> LoadBenchRecordsFallback(const std::string& csv_path);

}  // namespace accelsel::model::eval

#endif  // ACCELSEL_MODEL_EVAL_LLM_BENCH_SOURCE_H_
