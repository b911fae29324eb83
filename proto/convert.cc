// Field-by-field mapping; kept boring on purpose so that a reviewer can check it against the .proto.
#include "proto/convert.h"

namespace accelsel {
namespace {

double OptionalOrMissing(bool has, double v) { return has ? v : model::kMissing; }

}  // namespace

model::TaskContext FromProto(const v1::TaskContext& in) {
  model::TaskContext out;
  const auto& m = in.model();
  out.model.name = m.name();
  out.model.family = m.family();
  out.model.parameters_b = m.parameters_b();
  out.model.layers = m.layers();
  out.model.hidden_size = m.hidden_size();
  out.model.attention_heads = m.attention_heads();
  out.model.kv_heads = m.kv_heads();
  out.model.experts = m.experts();
  out.model.active_experts = m.active_experts();
  out.model.weight_dtype = m.weight_dtype();
  const auto& h = in.hardware();
  out.hardware.accelerator = h.accelerator();
  out.hardware.count = h.count();
  out.hardware.memory_gb = h.memory_gb();
  out.hardware.memory_bandwidth_gbps = h.memory_bandwidth_gbps();
  out.hardware.peak_tflops = h.peak_tflops();
  out.hardware.interconnect = h.interconnect();
  out.hardware.price_per_hour = h.price_per_hour();
  const auto& w = in.workload();
  out.workload.prompt_tokens = w.prompt_tokens();
  out.workload.output_tokens = w.output_tokens();
  out.workload.batch_size = w.batch_size();
  out.workload.request_rate_per_s = w.request_rate_per_s();
  out.workload.shared_prefix_ratio = w.shared_prefix_ratio();
  out.workload.dataset = w.dataset();
  out.embedding.assign(in.embedding().begin(), in.embedding().end());
  for (const auto& [k, v] : in.extra()) out.extra[k] = v;
  return out;
}

model::Strategy FromProto(const v1::Strategy& in) {
  model::Strategy out;
  out.id = in.id();
  out.description = in.description();
  for (const auto& c : in.components()) {
    out.components.emplace_back(c.method(), c.value());
    out.lossy = out.lossy || c.lossy();
  }
  return out;
}

model::Objective FromProto(v1::Objective in) {
  switch (in) {
    case v1::OBJECTIVE_TTFT: return model::Objective::kTtft;
    case v1::OBJECTIVE_TPOT: return model::Objective::kTpot;
    case v1::OBJECTIVE_THROUGHPUT: return model::Objective::kThroughput;
    case v1::OBJECTIVE_COST: return model::Objective::kCost;
    default: return model::Objective::kE2eLatency;
  }
}

const std::string& StrategyIdOf(const v1::RunReport& in) {
  return in.strategy_id().empty() ? in.strategy().id() : in.strategy_id();
}

model::RunStatus FromProto(v1::RunStatus in) {
  switch (in) {
    case v1::RUN_STATUS_OOM: return model::RunStatus::kOom;
    case v1::RUN_STATUS_TIMEOUT: return model::RunStatus::kTimeout;
    case v1::RUN_STATUS_CRASH: return model::RunStatus::kCrash;
    case v1::RUN_STATUS_NOT_APPLICABLE: return model::RunStatus::kNotApplicable;
    default: return model::RunStatus::kOk;
  }
}

model::RunMetrics FromProto(const v1::RunMetrics& mm) {
  model::RunMetrics out;
  out.ttft_ms = OptionalOrMissing(mm.has_ttft_ms(), mm.ttft_ms());
  out.tpot_ms = OptionalOrMissing(mm.has_tpot_ms(), mm.tpot_ms());
  out.e2e_latency_ms = OptionalOrMissing(mm.has_e2e_latency_ms(), mm.e2e_latency_ms());
  out.throughput_tokens_per_s = OptionalOrMissing(mm.has_throughput_tokens_per_s(), mm.throughput_tokens_per_s());
  out.peak_memory_gb = OptionalOrMissing(mm.has_peak_memory_gb(), mm.peak_memory_gb());
  return out;
}

model::RunRecord FromProto(const v1::RunReport& in) {
  model::RunRecord out;
  out.run_id = in.run_id();
  out.node_id = in.node_id();
  out.time_unix_ms = in.time_unix_ms();
  out.context = FromProto(in.context());
  out.strategy_id = StrategyIdOf(in);
  out.decision_id = in.decision_id();
  out.status = FromProto(in.status());
  out.metrics = FromProto(in.metrics());
  return out;
}

void ToProto(const model::TaskContext& in, v1::TaskContext* out) {
  auto* m = out->mutable_model();
  m->set_name(in.model.name);
  m->set_family(in.model.family);
  m->set_parameters_b(in.model.parameters_b);
  m->set_layers(in.model.layers);
  m->set_hidden_size(in.model.hidden_size);
  m->set_attention_heads(in.model.attention_heads);
  m->set_kv_heads(in.model.kv_heads);
  m->set_experts(in.model.experts);
  m->set_active_experts(in.model.active_experts);
  m->set_weight_dtype(in.model.weight_dtype);
  auto* h = out->mutable_hardware();
  h->set_accelerator(in.hardware.accelerator);
  h->set_count(in.hardware.count);
  h->set_memory_gb(in.hardware.memory_gb);
  h->set_memory_bandwidth_gbps(in.hardware.memory_bandwidth_gbps);
  h->set_peak_tflops(in.hardware.peak_tflops);
  h->set_interconnect(in.hardware.interconnect);
  h->set_price_per_hour(in.hardware.price_per_hour);
  auto* w = out->mutable_workload();
  w->set_prompt_tokens(in.workload.prompt_tokens);
  w->set_output_tokens(in.workload.output_tokens);
  w->set_batch_size(in.workload.batch_size);
  w->set_request_rate_per_s(in.workload.request_rate_per_s);
  w->set_shared_prefix_ratio(in.workload.shared_prefix_ratio);
  w->set_dataset(in.workload.dataset);
  out->mutable_embedding()->Assign(in.embedding.begin(), in.embedding.end());
  for (const auto& [k, v] : in.extra) (*out->mutable_extra())[k] = v;
}

void ToProto(const model::Strategy& in, v1::Strategy* out) {
  out->set_id(in.id);
  out->set_description(in.description);
  for (const auto& [method, value] : in.components) {
    auto* c = out->add_components();
    c->set_method(method);
    c->set_value(value);
  }
}

v1::Objective ToProto(model::Objective in) {
  switch (in) {
    case model::Objective::kTtft: return v1::OBJECTIVE_TTFT;
    case model::Objective::kTpot: return v1::OBJECTIVE_TPOT;
    case model::Objective::kThroughput: return v1::OBJECTIVE_THROUGHPUT;
    case model::Objective::kCost: return v1::OBJECTIVE_COST;
    case model::Objective::kE2eLatency: return v1::OBJECTIVE_E2E_LATENCY;
  }
  return v1::OBJECTIVE_E2E_LATENCY;
}

v1::EvidenceLayer ToProto(model::EvidenceLayer in) {
  switch (in) {
    case model::EvidenceLayer::kObserved: return v1::EVIDENCE_LAYER_OBSERVED;
    case model::EvidenceLayer::kModel: return v1::EVIDENCE_LAYER_MODEL;
    case model::EvidenceLayer::kPrior: return v1::EVIDENCE_LAYER_PRIOR;
    case model::EvidenceLayer::kUnknown: return v1::EVIDENCE_LAYER_UNKNOWN;
  }
  return v1::EVIDENCE_LAYER_UNKNOWN;
}

void ToProto(const model::Recommendation& in, double nominal_coverage, v1::Recommendation* out) {
  out->set_rank(in.rank);
  out->set_expected_value(in.expected_value);
  out->mutable_interval()->set_low(in.interval_low);
  out->mutable_interval()->set_high(in.interval_high);
  out->mutable_interval()->set_nominal_coverage(nominal_coverage);
  out->set_expected_latency_ms(in.expected_latency_ms);
  out->set_expected_cost(in.expected_cost);
  out->set_meets_constraints(in.meets_constraints);
  for (const auto& v : in.violated) out->add_violated(v);
  out->set_failure_probability(in.failure_probability);
  out->set_evidence_count(in.evidence_count);
  out->set_evidence_nodes(in.evidence_nodes);
  out->set_evidence_layer(ToProto(in.layer));
  out->set_explored(in.explored);
  out->set_selection_probability(in.selection_probability);
}

void ToProto(const model::RunRecord& in, v1::RunReport* out) {
  out->set_run_id(in.run_id);
  out->set_node_id(in.node_id);
  out->set_time_unix_ms(in.time_unix_ms);
  ToProto(in.context, out->mutable_context());
  out->set_strategy_id(in.strategy_id);
  out->set_decision_id(in.decision_id);
  out->set_status(static_cast<v1::RunStatus>(static_cast<int>(in.status)));
  auto* m = out->mutable_metrics();
  if (!model::IsMissing(in.metrics.ttft_ms)) m->set_ttft_ms(in.metrics.ttft_ms);
  if (!model::IsMissing(in.metrics.tpot_ms)) m->set_tpot_ms(in.metrics.tpot_ms);
  if (!model::IsMissing(in.metrics.e2e_latency_ms)) m->set_e2e_latency_ms(in.metrics.e2e_latency_ms);
  if (!model::IsMissing(in.metrics.throughput_tokens_per_s))
    m->set_throughput_tokens_per_s(in.metrics.throughput_tokens_per_s);
  if (!model::IsMissing(in.metrics.peak_memory_gb)) m->set_peak_memory_gb(in.metrics.peak_memory_gb);
  out->set_schema_version(1);
}

}  // namespace accelsel
