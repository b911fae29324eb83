// Synthetic data for the benchmarks; see synthetic.h. Shapes follow LLM serving roughly (roofline latency, OOM
// when weights exceed memory) so the model has something learnable, but no figure here is tuned to a result.
#include "bench/synthetic.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/convert.h"

namespace accelsel::bench {
namespace {

struct ModelRow {
  const char* name;
  const char* family;
  double params_b;
  uint32_t layers, hidden, heads, kv_heads;
  const char* dtype;
};
constexpr ModelRow kModels[] = {
    {"meta-llama/Meta-Llama-3-8B", "llama", 8.0, 32, 4096, 32, 8, "bf16"},
    {"meta-llama/Meta-Llama-3-70B", "llama", 70.6, 80, 8192, 64, 8, "bf16"},
    {"mistralai/Mistral-7B-v0.1", "mistral", 7.2, 32, 4096, 32, 8, "bf16"},
    {"Qwen/Qwen2-7B", "qwen2", 7.6, 28, 3584, 28, 4, "bf16"},
    {"Qwen/Qwen2-72B", "qwen2", 72.7, 80, 8192, 64, 8, "fp8"},
    {"google/gemma-2-9b", "gemma", 9.2, 42, 3584, 16, 8, "bf16"},
};
struct HardwareRow {
  const char* name;
  double mem_gb, bw_gbps, tflops, price;
  const char* interconnect;
};
constexpr HardwareRow kHardware[] = {
    {"Nvidia H100 GPU", 80, 3350, 989, 4.0, "nvlink"}, {"Nvidia A100 GPU", 80, 2039, 312, 2.0, "nvlink"},
    {"AMD MI300X GPU", 192, 5300, 1307, 3.5, "xgmi"},  {"Nvidia L40S GPU", 48, 864, 362, 1.2, "pcie"},
    {"Nvidia GH200", 96, 4000, 989, 4.5, "nvlink"},
};
constexpr const char* kEngines[] = {"vllm", "sglang", "tensorrt-llm", "llama.cpp", "deepspeed-mii"};
constexpr const char* kQuants[] = {"none", "fp8", "int8", "int4"};
constexpr double kEngineFactor[] = {1.0, 0.93, 0.85, 1.6, 1.15};
constexpr double kQuantFactor[] = {1.0, 0.7, 0.75, 0.6};

}  // namespace

std::string SyntheticStrategyId(int i) { return absl::StrFormat("syn-%03d", i); }

v1::Strategy SyntheticStrategy(int i) {
  v1::Strategy s;
  s.set_id(SyntheticStrategyId(i));
  auto add = [&s](const char* method, std::string value) {
    auto* c = s.add_components();
    c->set_method(method);
    c->set_value(std::move(value));
  };
  add("engine", kEngines[i % 5]);
  add("tp", absl::StrCat(1 << ((i / 5) % 4)));
  add("quant", kQuants[(i / 20) % 4]);
  if ((i / 80) % 2 == 1) add("spec_k", "4");
  s.set_description(absl::StrCat("synthetic strategy ", i, " for benchmarks"));
  return s;
}

std::vector<v1::Strategy> SyntheticStrategies(int k) {
  std::vector<v1::Strategy> out;
  out.reserve(k);
  for (int i = 0; i < k; ++i) out.push_back(SyntheticStrategy(i));
  return out;
}

void SyntheticContext(uint64_t i, v1::TaskContext* out) {
  const ModelRow& m = kModels[i % std::size(kModels)];
  const HardwareRow& h = kHardware[(i / 7) % std::size(kHardware)];
  auto* md = out->mutable_model();
  md->set_name(m.name);
  md->set_family(m.family);
  md->set_parameters_b(m.params_b);
  md->set_layers(m.layers);
  md->set_hidden_size(m.hidden);
  md->set_attention_heads(m.heads);
  md->set_kv_heads(m.kv_heads);
  md->set_weight_dtype(m.dtype);
  auto* hd = out->mutable_hardware();
  hd->set_accelerator(h.name);
  const uint32_t count = 1u << ((i / 3) % 4);
  hd->set_count(count);
  hd->set_memory_gb(h.mem_gb);
  hd->set_memory_bandwidth_gbps(h.bw_gbps);
  hd->set_peak_tflops(h.tflops);
  hd->set_interconnect(h.interconnect);
  hd->set_price_per_hour(h.price * count);
  // Workload shape from the bits of i: unique for i < 2^28.
  auto* w = out->mutable_workload();
  w->set_prompt_tokens(64 + static_cast<uint32_t>(i % 4096));
  w->set_output_tokens(16 + static_cast<uint32_t>((i / 4096) % 1024));
  w->set_batch_size(1 + static_cast<uint32_t>((i / (4096ull * 1024)) % 64));
  w->set_request_rate_per_s(static_cast<double>(i % 97) / 4.0);
  w->set_shared_prefix_ratio(static_cast<double>(i % 11) / 10.0);
  w->set_dataset("sharegpt");
}

void PooledContext(uint64_t i, uint64_t pool, v1::TaskContext* out) {
  // Spread the pool over the shape space so pooled contexts look like unique ones.
  SyntheticContext((i % pool) * 2654435761ull % (1ull << 28), out);
}

void SyntheticRun(const v1::TaskContext& context, int strategy, std::mt19937_64& rng, v1::RunReport* out) {
  const auto& m = context.model();
  const auto& h = context.hardware();
  const auto& w = context.workload();
  const int tp = 1 << ((strategy / 5) % 4);
  const int quant = (strategy / 20) % 4;
  const double bytes_per_param = quant == 0 ? 2.0 : (quant == 3 ? 0.5 : 1.0);
  const double weight_gb = m.parameters_b() * bytes_per_param;
  out->set_node_id("bench-node");
  *out->mutable_context() = context;
  out->set_strategy_id(SyntheticStrategyId(strategy));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const bool oom = h.memory_gb() > 0 && weight_gb > h.memory_gb() * tp;
  if (oom || u(rng) < 0.02) {
    out->set_status(oom ? v1::RUN_STATUS_OOM : v1::RUN_STATUS_CRASH);
    out->clear_metrics();
    return;
  }
  out->set_status(v1::RUN_STATUS_OK);
  // Contexts from the bundled data may lack descriptors (0 = unknown): assume a mid-range accelerator.
  const double tflops = h.peak_tflops() > 0 ? h.peak_tflops() : 300.0;
  const double bandwidth_gbps = h.memory_bandwidth_gbps() > 0 ? h.memory_bandwidth_gbps() : 1500.0;
  const double params_b = m.parameters_b() > 0 ? m.parameters_b() : 7.0;
  const double flops_per_token = 2e9 * params_b;
  const double prefill_s = std::max<uint32_t>(w.prompt_tokens(), 1) * std::max<uint32_t>(w.batch_size(), 1) *
                           flops_per_token / (tflops * 1e12 * tp);
  const double step_s = std::max(weight_gb, 1.0) / (bandwidth_gbps * tp);
  const double factor = kEngineFactor[strategy % 5] * kQuantFactor[quant] * ((strategy / 80) % 2 ? 0.8 : 1.0) *
                        (1.0 + 0.15 * (tp - 1) / tp);
  std::lognormal_distribution<double> noise(0.0, 0.1);
  const double e2e_ms = 1000.0 * (prefill_s + w.output_tokens() * step_s) * factor * noise(rng) + 5.0;
  auto* mt = out->mutable_metrics();
  mt->set_e2e_latency_ms(e2e_ms);
  mt->set_ttft_ms(1000.0 * prefill_s * factor + 2.0);
  mt->set_throughput_tokens_per_s(w.output_tokens() * w.batch_size() / (e2e_ms / 1000.0));
}

std::vector<model::RunRecord> SyntheticRecords(size_t n, size_t contexts, int k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<model::RunRecord> out;
  out.reserve(n);
  v1::TaskContext ctx;
  v1::RunReport report;
  for (size_t i = 0; i < n; ++i) {
    PooledContext(rng() % contexts, contexts, &ctx);
    SyntheticRun(ctx, static_cast<int>(rng() % k), rng, &report);
    report.set_run_id(absl::StrCat("r", i));
    report.set_time_unix_ms(1700000000000 + static_cast<int64_t>(i));
    out.push_back(FromProto(report));
  }
  return out;
}

std::vector<model::Strategy> SyntheticModelStrategies(int k) {
  std::vector<model::Strategy> out;
  for (const v1::Strategy& s : SyntheticStrategies(k)) out.push_back(FromProto(s));
  return out;
}

v1::SelectAcceleratorResponse CannedResponse(int k) {
  v1::SelectAcceleratorResponse r;
  r.set_decision_id("d-0123456789abcdef0123456789abcdef");
  r.set_model_version(1);
  r.set_objective(v1::OBJECTIVE_E2E_LATENCY);
  for (int i = 0; i < k; ++i) {
    auto* rec = r.add_recommendations();
    *rec->mutable_strategy() = SyntheticStrategy(i);
    rec->set_rank(i + 1);
    rec->set_expected_value(1234.5678 + i);
    rec->mutable_interval()->set_low(1000.123 + i);
    rec->mutable_interval()->set_high(1500.456 + i);
    rec->mutable_interval()->set_nominal_coverage(0.8);
    rec->set_expected_latency_ms(1234.5678 + i);
    rec->set_expected_cost(0.00137 * (i + 1));
    rec->set_meets_constraints(true);
    rec->set_failure_probability(0.0123);
    rec->set_evidence_count(0);
    rec->set_evidence_layer(v1::EVIDENCE_LAYER_MODEL);
    rec->set_selection_probability(i == 0 ? 1.0 : 0.0);
  }
  return r;
}

}  // namespace accelsel::bench
