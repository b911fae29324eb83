// Unit tests of proto/convert.h: every conversion round-trips, unset optional metrics stay missing (and a measured 0
// stays 0), enum mappings cover every value both ways, and unspecified wire values get their documented defaults.
#include "proto/convert.h"

#include <cstdint>
#include <iterator>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace accelsel {
namespace {

using ::google::protobuf::util::MessageDifferencer;

v1::TaskContext FullContext() {
  v1::TaskContext c;
  auto* m = c.mutable_model();
  m->set_name("meta-llama/Meta-Llama-3-70B");
  m->set_family("llama");
  m->set_parameters_b(70.6);
  m->set_layers(80);
  m->set_hidden_size(8192);
  m->set_attention_heads(64);
  m->set_kv_heads(8);
  m->set_experts(std::numeric_limits<uint32_t>::max());
  m->set_active_experts(2);
  m->set_weight_dtype("fp8");
  auto* h = c.mutable_hardware();
  h->set_accelerator("Nvidia H100 GPU");
  h->set_count(8);
  h->set_memory_gb(80);
  h->set_memory_bandwidth_gbps(3350.5);
  h->set_peak_tflops(989);
  h->set_interconnect("nvlink");
  h->set_price_per_hour(1e-300);
  auto* w = c.mutable_workload();
  w->set_prompt_tokens(1);
  w->set_output_tokens(131072);
  w->set_batch_size(256);
  w->set_request_rate_per_s(0.5);
  w->set_shared_prefix_ratio(1.0);
  w->set_dataset("sharegpt \xc3\xa9");  // UTF-8 survives
  c.add_embedding(0.25f);
  c.add_embedding(-1.5f);
  c.add_embedding(std::numeric_limits<float>::max());
  (*c.mutable_extra())["kv_cache_gb"] = 12.5;
  (*c.mutable_extra())["zero"] = 0;
  (*c.mutable_extra())["negative"] = -3;
  return c;
}

TEST(ConvertTest, TaskContextRoundTripsEveryField) {
  const v1::TaskContext in = FullContext();
  const model::TaskContext plain = FromProto(in);
  EXPECT_EQ(plain.model.name, "meta-llama/Meta-Llama-3-70B");
  EXPECT_EQ(plain.model.experts, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(plain.hardware.count, 8u);
  EXPECT_EQ(plain.hardware.price_per_hour, 1e-300);
  EXPECT_EQ(plain.workload.output_tokens, 131072u);
  EXPECT_EQ(plain.workload.dataset, "sharegpt \xc3\xa9");
  EXPECT_THAT(plain.embedding, ::testing::ElementsAre(0.25f, -1.5f, std::numeric_limits<float>::max()));
  EXPECT_EQ(plain.extra.size(), 3u);
  EXPECT_EQ(plain.extra.at("negative"), -3);
  v1::TaskContext back;
  ToProto(plain, &back);
  EXPECT_TRUE(MessageDifferencer::Equals(in, back)) << in.DebugString() << "\n---\n" << back.DebugString();
}

TEST(ConvertTest, AnEmptyContextMapsToZerosAndBack) {
  const model::TaskContext plain = FromProto(v1::TaskContext());
  EXPECT_TRUE(plain.model.name.empty());
  EXPECT_EQ(plain.model.parameters_b, 0);
  EXPECT_EQ(plain.hardware.count, 0u);
  EXPECT_TRUE(plain.embedding.empty());
  EXPECT_TRUE(plain.extra.empty());
  v1::TaskContext back;
  ToProto(plain, &back);
  // proto3 scalars: zeros are not "set", so every part of the round trip is empty.
  EXPECT_EQ(back.model().ByteSizeLong(), 0u) << back.DebugString();
  EXPECT_EQ(back.hardware().ByteSizeLong(), 0u) << back.DebugString();
  EXPECT_EQ(back.workload().ByteSizeLong(), 0u) << back.DebugString();
  EXPECT_EQ(back.embedding_size(), 0);
  EXPECT_EQ(back.extra_size(), 0);
}

TEST(ConvertTest, StrategyRoundTripsKeepingComponentOrderAndRepeats) {
  v1::Strategy in;
  in.set_id("trtllm:tp=2:fp8");
  in.set_description("TensorRT-LLM, TP 2, FP8");
  for (const auto& [method, value] :
       {std::pair<const char*, const char*>{"engine", "trtllm"}, {"tp", "2"}, {"quant", "fp8"}, {"quant", "kv-int8"}}) {
    auto* c = in.add_components();
    c->set_method(method);
    c->set_value(value);
  }
  const model::Strategy plain = FromProto(in);
  ASSERT_EQ(plain.components.size(), 4u);
  EXPECT_EQ(plain.components[3], std::make_pair(std::string("quant"), std::string("kv-int8")));
  v1::Strategy back;
  ToProto(plain, &back);
  EXPECT_TRUE(MessageDifferencer::Equals(in, back)) << back.DebugString();
}

TEST(ConvertTest, TheRetiredFlagIsStateNotPartOfTheModelStrategy) {
  v1::Strategy in;
  in.set_id("s");
  in.set_retired(true);
  v1::Strategy back;
  ToProto(FromProto(in), &back);
  EXPECT_FALSE(back.retired());
  EXPECT_EQ(back.id(), "s");
}

// The selector needs only whether some component is lossy; the per-component flag stays on the wire record (the
// catalogue answers with its protos), and ToProto of a model strategy leaves every component unflagged.
TEST(ConvertTest, AnyLossyComponentMakesTheModelStrategyLossy) {
  v1::Strategy in;
  in.set_id("llama.cpp:q4_0");
  auto* engine = in.add_components();
  engine->set_method("engine");
  engine->set_value("llama.cpp");
  auto* weights = in.add_components();
  weights->set_method("weights");
  weights->set_value("q4_0");
  weights->set_lossy(true);
  EXPECT_TRUE(FromProto(in).lossy);
  in.mutable_components(1)->set_lossy(false);
  EXPECT_FALSE(FromProto(in).lossy);
  in.mutable_components(1)->set_lossy(true);
  v1::Strategy back;
  ToProto(FromProto(in), &back);
  ASSERT_EQ(back.components_size(), 2);
  EXPECT_FALSE(back.components(1).lossy());
}

v1::RunReport FullReport() {
  v1::RunReport r;
  r.set_run_id("node-7:0001");
  r.set_node_id("node-7");
  r.set_time_unix_ms(std::numeric_limits<int64_t>::min());
  *r.mutable_context() = FullContext();
  r.set_strategy_id("vllm");
  r.set_decision_id("d-0123");
  r.set_status(v1::RUN_STATUS_OK);
  r.mutable_metrics()->set_ttft_ms(0);  // a measured zero is a value, not "missing"
  r.mutable_metrics()->set_tpot_ms(12.5);
  r.mutable_metrics()->set_e2e_latency_ms(1e9);
  r.mutable_metrics()->set_throughput_tokens_per_s(4096);
  r.mutable_metrics()->set_peak_memory_gb(79.9);
  r.set_schema_version(1);
  return r;
}

TEST(ConvertTest, RunReportRoundTripsEveryField) {
  const v1::RunReport in = FullReport();
  const model::RunRecord plain = FromProto(in);
  EXPECT_EQ(plain.time_unix_ms, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(plain.metrics.ttft_ms, 0);
  EXPECT_FALSE(model::IsMissing(plain.metrics.ttft_ms));
  EXPECT_EQ(plain.status, model::RunStatus::kOk);
  v1::RunReport back;
  ToProto(plain, &back);
  EXPECT_TRUE(MessageDifferencer::Equals(in, back)) << back.DebugString();
}

TEST(ConvertTest, UnsetMetricsAreMissingAndStayUnset) {
  v1::RunReport in = FullReport();
  in.mutable_metrics()->clear_ttft_ms();
  in.mutable_metrics()->clear_peak_memory_gb();
  const model::RunRecord plain = FromProto(in);
  EXPECT_TRUE(model::IsMissing(plain.metrics.ttft_ms));
  EXPECT_TRUE(model::IsMissing(plain.metrics.peak_memory_gb));
  EXPECT_EQ(plain.metrics.tpot_ms, 12.5);
  v1::RunReport back;
  ToProto(plain, &back);
  EXPECT_FALSE(back.metrics().has_ttft_ms());
  EXPECT_FALSE(back.metrics().has_peak_memory_gb());
  EXPECT_TRUE(back.metrics().has_tpot_ms());
  EXPECT_TRUE(MessageDifferencer::Equals(in, back)) << back.DebugString();
}

TEST(ConvertTest, AReportThatCarriesItsStrategyDefinitionIsKeyedByThatId) {
  v1::RunReport in = FullReport();
  in.clear_strategy_id();
  in.mutable_strategy()->set_id("vllm:fp8");
  EXPECT_EQ(FromProto(in).strategy_id, "vllm:fp8");
  in.set_strategy_id("explicit");  // strategy_id wins when both are given
  EXPECT_EQ(FromProto(in).strategy_id, "explicit");
}

TEST(ConvertTest, ToProtoStampsTheSchemaVersion) {
  model::RunRecord plain;
  plain.run_id = "r";
  v1::RunReport out;
  ToProto(plain, &out);
  EXPECT_EQ(out.schema_version(), 1u);
  EXPECT_EQ(out.status(), v1::RUN_STATUS_OK);  // the record's default
  EXPECT_FALSE(out.metrics().has_e2e_latency_ms());
}

TEST(ConvertTest, EveryRunStatusMapsBothWaysAndUnspecifiedMeansOk) {
  const std::pair<v1::RunStatus, model::RunStatus> pairs[] = {
      {v1::RUN_STATUS_OK, model::RunStatus::kOk},
      {v1::RUN_STATUS_OOM, model::RunStatus::kOom},
      {v1::RUN_STATUS_TIMEOUT, model::RunStatus::kTimeout},
      {v1::RUN_STATUS_CRASH, model::RunStatus::kCrash},
      {v1::RUN_STATUS_NOT_APPLICABLE, model::RunStatus::kNotApplicable},
  };
  for (const auto& [wire, plain] : pairs) {
    SCOPED_TRACE(v1::RunStatus_Name(wire));
    v1::RunReport r;
    r.set_status(wire);
    EXPECT_EQ(FromProto(r).status, plain);
    model::RunRecord rec;
    rec.status = plain;
    v1::RunReport back;
    ToProto(rec, &back);
    EXPECT_EQ(back.status(), wire);
  }
  // Every wire value but UNSPECIFIED is covered above.
  EXPECT_EQ(v1::RunStatus_descriptor()->value_count(), static_cast<int>(std::size(pairs)) + 1);
  v1::RunReport unspecified;
  EXPECT_EQ(FromProto(unspecified).status, model::RunStatus::kOk);
}

TEST(ConvertTest, EveryObjectiveMapsBothWaysAndUnspecifiedMeansE2eLatency) {
  const std::pair<v1::Objective, model::Objective> pairs[] = {
      {v1::OBJECTIVE_E2E_LATENCY, model::Objective::kE2eLatency},
      {v1::OBJECTIVE_TTFT, model::Objective::kTtft},
      {v1::OBJECTIVE_TPOT, model::Objective::kTpot},
      {v1::OBJECTIVE_THROUGHPUT, model::Objective::kThroughput},
      {v1::OBJECTIVE_COST, model::Objective::kCost},
  };
  for (const auto& [wire, plain] : pairs) {
    SCOPED_TRACE(v1::Objective_Name(wire));
    EXPECT_EQ(FromProto(wire), plain);
    EXPECT_EQ(ToProto(plain), wire);
  }
  EXPECT_EQ(v1::Objective_descriptor()->value_count(), static_cast<int>(std::size(pairs)) + 1);
  EXPECT_EQ(FromProto(v1::OBJECTIVE_UNSPECIFIED), model::Objective::kE2eLatency);
}

TEST(ConvertTest, EveryEvidenceLayerHasItsWireValue) {
  EXPECT_EQ(ToProto(model::EvidenceLayer::kObserved), v1::EVIDENCE_LAYER_OBSERVED);
  EXPECT_EQ(ToProto(model::EvidenceLayer::kModel), v1::EVIDENCE_LAYER_MODEL);
  EXPECT_EQ(ToProto(model::EvidenceLayer::kPrior), v1::EVIDENCE_LAYER_PRIOR);
  EXPECT_EQ(ToProto(model::EvidenceLayer::kUnknown), v1::EVIDENCE_LAYER_UNKNOWN);
  EXPECT_EQ(v1::EvidenceLayer_descriptor()->value_count(), 5);  // the four above and UNSPECIFIED
}

}  // namespace
}  // namespace accelsel
