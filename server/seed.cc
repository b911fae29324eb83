// Seed loading: LLM-Inference-Bench rows -> RunReports stamped with the import time.
#include "server/seed.h"

#include "absl/time/clock.h"
#include "datasets/llm_inference_bench.h"
#include "proto/convert.h"

namespace accelsel::server {

absl::StatusOr<SeedData> LoadSeed(const std::string& csv_path, const std::string& descriptors_dir) {
  auto runs = datasets::LoadLlmInferenceBench(csv_path, descriptors_dir, nullptr);
  if (!runs.ok()) return runs.status();
  SeedData out;
  for (const model::Strategy& s : datasets::LlmBenchStrategies(*runs)) ToProto(s, &out.strategies.emplace_back());
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  out.reports.reserve(runs->size());
  for (model::RunRecord& r : *runs) {
    if (r.time_unix_ms == 0) r.time_unix_ms = now_ms;
    ToProto(r, &out.reports.emplace_back());
  }
  return out;
}

}  // namespace accelsel::server
