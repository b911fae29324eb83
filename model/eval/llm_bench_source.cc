// LLM-Inference-Bench rows -> RunRecords for the evaluator; see llm_bench_source.h.
#include "model/eval/llm_bench_source.h"

#include <cmath>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "model/eval/tabular.h"
#include "model/features.h"

#if __has_include("model/llm_bench.h")
#include "model/llm_bench.h"
#define ACCELSEL_HAVE_LLM_BENCH 1
#else
#define ACCELSEL_HAVE_LLM_BENCH 0
#endif

namespace accelsel::model::eval {
namespace {

struct Device {
  const char* name;
  double memory_gb, bandwidth_gbps, tflops;
  const char* interconnect;
};
// Vendor datasheet figures per device (dense 16-bit TFLOP/s).
constexpr Device kDevices[] = {
    {"Nvidia A100 GPU", 40, 1555, 312, "nvlink"},
    {"Nvidia H100 GPU", 80, 3350, 989, "nvlink"},
    {"Nvidia GH200 GPU", 96, 4000, 989, "nvlink"},
    {"AMD MI250 GPU", 64, 1638, 181, "infinity-fabric"},  // one GCD, as the runtime sees it
    {"AMD MI300X GPU", 192, 5300, 1307, "infinity-fabric"},
    {"Intel PVC GPU", 64, 1638, 419, "xe-link"},  // one stack of a Max 1550
    {"Intel Max 1550", 64, 1638, 419, "xe-link"},
    {"Habana Gaudi2", 96, 2460, 432, "roce"},
    {"SambaNova SN40L", 64, 1600, 638, "rdu"},
};

struct ModelSpec {
  const char* name;
  const char* family;
  double params_b;
  uint32_t layers, hidden, heads, kv_heads, experts, active_experts;
};
// Published model configurations (config.json of each checkpoint).
constexpr ModelSpec kModels[] = {
    {"meta-llama/Llama-2-7b-hf", "llama", 6.74, 32, 4096, 32, 32, 0, 0},
    {"meta-llama/Meta-Llama-3-8B", "llama", 8.03, 32, 4096, 32, 8, 0, 0},
    {"mistralai/Mistral-7B-v0.1", "mistral", 7.24, 32, 4096, 32, 8, 0, 0},
    {"Qwen/Qwen2-7B", "qwen", 7.62, 28, 3584, 28, 4, 0, 0},
    {"mistralai/Mixtral-8x7B-v0.1", "mixtral", 46.7, 32, 4096, 32, 8, 8, 2},
    {"meta-llama/Meta-Llama-3-70B", "llama", 70.6, 80, 8192, 64, 8, 0, 0},
    {"meta-llama/Llama-2-70b-hf", "llama", 69.0, 80, 8192, 64, 8, 0, 0},
    {"Qwen/Qwen2-72B", "qwen", 72.7, 80, 8192, 64, 8, 0, 0},
    {"Deci/DeciLM-7B", "deci", 7.04, 32, 4096, 32, 4, 0, 0},
    {"BAAI/Aquila-7B", "aquila", 7.0, 32, 4096, 32, 32, 0, 0},
    {"bigscience/bloom-7b1", "bloom", 7.07, 30, 4096, 32, 32, 0, 0},
    {"EleutherAI/gpt-j-6b", "gptj", 6.05, 28, 4096, 16, 16, 0, 0},
    {"huggyllama/llama-7b", "llama", 6.74, 32, 4096, 32, 32, 0, 0},
    {"facebook/opt-6.7b", "opt", 6.7, 32, 4096, 32, 32, 0, 0},
    {"Qwen/Qwen1.5-7B", "qwen", 7.7, 32, 4096, 32, 32, 0, 0},
};

}  // namespace

bool UsingProductBenchMapping() { return ACCELSEL_HAVE_LLM_BENCH != 0; }

absl::StatusOr<std::vector<RunRecord>> LoadBenchRecordsFallback(const std::string& csv_path) {
  auto table = ReadCsvFile(csv_path);
  if (!table.ok()) return table.status();
  const int hw = table->Column("Hardware"), n = table->Column("Num of Hardware"), fw = table->Column("Framework"),
            mo = table->Column("Model"), io = table->Column("Input Output Length"),
            bs = table->Column("Batch Size"), lat = table->Column("Latency"), thr = table->Column("Throughput");
  if (hw < 0 || n < 0 || fw < 0 || mo < 0 || io < 0 || bs < 0 || lat < 0) {
    return absl::InvalidArgumentError(absl::StrCat(csv_path, ": not an LLM-Inference-Bench throughput table"));
  }
  std::vector<RunRecord> out;
  for (size_t i = 0; i < table->rows.size(); ++i) {
    const auto& row = table->rows[i];
    double count = 0, len = 0, batch = 0, latency_s = 0, tput = kMissing;
    if (!ParseNumber(row[n], &count) || !ParseNumber(row[io], &len) || !ParseNumber(row[bs], &batch) ||
        !ParseNumber(row[lat], &latency_s) || !(latency_s > 0) || !(count > 0) || !(len > 0) || !(batch > 0)) {
      continue;
    }
    if (thr >= 0 && !ParseNumber(row[thr], &tput)) tput = kMissing;
    RunRecord r;
    r.run_id = absl::StrCat("llm-bench-", i);
    r.node_id = "llm-inference-bench";
    auto& c = r.context;
    c.hardware.accelerator = row[hw];
    c.hardware.count = static_cast<uint32_t>(count);
    for (const Device& d : kDevices) {
      if (row[hw] == d.name) {
        c.hardware.memory_gb = d.memory_gb;
        c.hardware.memory_bandwidth_gbps = d.bandwidth_gbps;
        c.hardware.peak_tflops = d.tflops;
        c.hardware.interconnect = d.interconnect;
      }
    }
    c.model.name = row[mo];
    c.model.weight_dtype = "fp16";
    for (const ModelSpec& m : kModels) {
      if (row[mo] == m.name) {
        c.model.family = m.family;
        c.model.parameters_b = m.params_b;
        c.model.layers = m.layers;
        c.model.hidden_size = m.hidden;
        c.model.attention_heads = m.heads;
        c.model.kv_heads = m.kv_heads;
        c.model.experts = m.experts;
        c.model.active_experts = m.active_experts;
      }
    }
    c.workload.prompt_tokens = static_cast<uint32_t>(len);
    c.workload.output_tokens = static_cast<uint32_t>(len);
    c.workload.batch_size = static_cast<uint32_t>(batch);
    c.workload.dataset = "llm-inference-bench";
    r.strategy_id = absl::StrCat("engine=", absl::AsciiStrToLower(row[fw]));
    r.metrics.e2e_latency_ms = latency_s * 1000.0;
    r.metrics.throughput_tokens_per_s = tput;
    out.push_back(std::move(r));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(csv_path, ": no usable rows"));
  return out;
}

absl::StatusOr<std::vector<RunRecord>> LoadBenchRecords(const std::string& csv_path,
                                                        const std::string& descriptors_dir) {
#if ACCELSEL_HAVE_LLM_BENCH
  return LoadLlmInferenceBench(csv_path, descriptors_dir, nullptr);
#else
  (void)descriptors_dir;
  return LoadBenchRecordsFallback(csv_path);
#endif
}

}  // namespace accelsel::model::eval
