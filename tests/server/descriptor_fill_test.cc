// Contexts filled by name: FillDescriptors on small in-memory tables (caller's fields kept, table zeros ignored, the
// experts rule held, case-blind names and accelerator labels, in place or into a copy), then against the real server
// (127.0.0.1:0) with the bundled data/descriptors: SelectAccelerator fills what was left unset and says so in
// filled_fields, ranks and logs the filled context, an unknown name is answered OK with nothing filled, and a run
// reported by name lands in the context a selection by name asks about.
#include "server/descriptor_fill.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/context_key.h"
#include "proto/convert.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

using server::FillDescriptors;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string SourceFile(const std::string& relative) {
  const char* src = std::getenv("ACCELSEL_SOURCE_DIR");
  return absl::StrCat(src != nullptr ? src : ".", "/", relative);
}

datasets::DescriptorTables SmallTables() {
  datasets::DescriptorTables t;
  model::ModelDescriptor dense{.name = "org/Dense-7B",
                               .family = "llama",
                               .parameters_b = 6.7,
                               .layers = 32,
                               .hidden_size = 4096,
                               .attention_heads = 32,
                               .kv_heads = 8,
                               .weight_dtype = "bf16"};
  model::ModelDescriptor moe{.name = "org/MoE-8x7B",
                             .family = "mixtral",
                             .parameters_b = 46.7,
                             .layers = 32,
                             .hidden_size = 4096,
                             .attention_heads = 32,
                             .kv_heads = 8,
                             .experts = 8,
                             .active_experts = 2,
                             .weight_dtype = "bf16"};
  t.models = {{dense.name, dense}, {moe.name, moe}};
  datasets::AcceleratorEntry gpu{.label = "Vendor G1",
                                 .descriptor = {.accelerator = "Vendor G1",
                                                .memory_gb = 80,
                                                .memory_bandwidth_gbps = 3350,
                                                .peak_tflops = 989,
                                                .interconnect = "nvlink"},
                                 .source = "datasheet"};
  // A label variant, and a device whose bandwidth the table does not know (0).
  datasets::AcceleratorEntry variant = gpu;
  variant.label = "G1 (old label)";
  datasets::AcceleratorEntry unknown_bw{
      .label = "Vendor N1",
      .descriptor = {.accelerator = "Vendor N1", .memory_gb = 64, .peak_tflops = 638, .interconnect = "p2p"},
      .source = "paper"};
  t.accelerators = {{gpu.label, gpu}, {variant.label, variant}, {unknown_bw.label, unknown_bw}};
  return t;
}

v1::TaskContext Named(const std::string& model, const std::string& accelerator) {
  v1::TaskContext c;
  c.mutable_model()->set_name(model);
  c.mutable_hardware()->set_accelerator(accelerator);
  c.mutable_hardware()->set_count(1);
  c.mutable_workload()->set_prompt_tokens(512);
  c.mutable_workload()->set_output_tokens(512);
  c.mutable_workload()->set_batch_size(16);
  return c;
}

std::vector<std::string> Fill(const datasets::DescriptorTables& t, const v1::TaskContext& in, v1::TaskContext* out,
                              bool* any = nullptr) {
  std::vector<std::string_view> filled;
  const bool did = FillDescriptors(t, in, out, &filled);
  if (any != nullptr) *any = did;
  EXPECT_EQ(did, !filled.empty());
  return {filled.begin(), filled.end()};
}

TEST(FillDescriptorsTest, FillsWhatTheCallerLeftUnsetInProtoOrder) {
  const auto tables = SmallTables();
  const v1::TaskContext in = Named("org/Dense-7B", "Vendor G1");
  v1::TaskContext out;
  EXPECT_THAT(
      Fill(tables, in, &out),
      ElementsAre("context.model.family", "context.model.parameters_b", "context.model.layers",
                  "context.model.hidden_size", "context.model.attention_heads", "context.model.kv_heads",
                  "context.model.weight_dtype", "context.hardware.memory_gb", "context.hardware.memory_bandwidth_gbps",
                  "context.hardware.peak_tflops", "context.hardware.interconnect"));
  EXPECT_EQ(out.model().name(), "org/Dense-7B");
  EXPECT_EQ(out.model().family(), "llama");
  EXPECT_DOUBLE_EQ(out.model().parameters_b(), 6.7);
  EXPECT_EQ(out.model().kv_heads(), 8u);
  EXPECT_EQ(out.model().experts(), 0u) << "a dense model's 0 experts is no value to fill";
  EXPECT_EQ(out.model().weight_dtype(), "bf16");
  EXPECT_DOUBLE_EQ(out.hardware().memory_bandwidth_gbps(), 3350);
  EXPECT_DOUBLE_EQ(out.hardware().peak_tflops(), 989);
  EXPECT_EQ(out.hardware().interconnect(), "nvlink");
  EXPECT_EQ(out.hardware().count(), 1u);
  EXPECT_EQ(out.workload().batch_size(), 16u);
  EXPECT_EQ(in.model().family(), "") << "the input is only read";
}

TEST(FillDescriptorsTest, KeepsEveryFieldTheCallerSet) {
  const auto tables = SmallTables();
  v1::TaskContext in = Named("org/Dense-7B", "Vendor G1");
  in.mutable_model()->set_family("custom");
  in.mutable_model()->set_weight_dtype("fp8");
  in.mutable_hardware()->set_memory_bandwidth_gbps(2039);
  in.mutable_hardware()->set_interconnect("pcie");
  in.mutable_hardware()->set_price_per_hour(2.5);
  v1::TaskContext out;
  const auto filled = Fill(tables, in, &out);
  for (const char* kept : {"context.model.family", "context.model.weight_dtype",
                           "context.hardware.memory_bandwidth_gbps", "context.hardware.interconnect"}) {
    EXPECT_THAT(filled, ::testing::Not(::testing::Contains(kept)));
  }
  EXPECT_EQ(out.model().family(), "custom");
  EXPECT_EQ(out.model().weight_dtype(), "fp8");
  EXPECT_DOUBLE_EQ(out.hardware().memory_bandwidth_gbps(), 2039);
  EXPECT_EQ(out.hardware().interconnect(), "pcie");
  EXPECT_DOUBLE_EQ(out.hardware().price_per_hour(), 2.5);
  EXPECT_DOUBLE_EQ(out.hardware().peak_tflops(), 989) << "the fields left unset are still filled";
}

TEST(FillDescriptorsTest, UnknownNamesAndCompleteContextsFillNothingAndCopyNothing) {
  const auto tables = SmallTables();
  v1::TaskContext out;
  out.mutable_model()->set_name("untouched");
  bool any = true;
  EXPECT_THAT(Fill(tables, Named("acme/Unknown-1B", "Acme X1"), &out, &any), IsEmpty());
  EXPECT_FALSE(any);
  EXPECT_EQ(out.model().name(), "untouched");

  v1::TaskContext complete;
  std::vector<std::string_view> all;
  ASSERT_TRUE(FillDescriptors(tables, Named("org/Dense-7B", "Vendor G1"), &complete, &all));
  out.mutable_model()->set_name("untouched");
  EXPECT_THAT(Fill(tables, complete, &out, &any), IsEmpty());
  EXPECT_FALSE(any);
  EXPECT_EQ(out.model().name(), "untouched");
}

TEST(FillDescriptorsTest, NamesMatchIgnoringCaseAndAcceleratorsByLabel) {
  const auto tables = SmallTables();
  v1::TaskContext out;
  const auto filled = Fill(tables, Named("ORG/dense-7b", "g1 (OLD LABEL)"), &out);
  EXPECT_THAT(filled, ::testing::Contains("context.model.layers"));
  EXPECT_THAT(filled, ::testing::Contains("context.hardware.memory_bandwidth_gbps"));
  EXPECT_EQ(out.model().name(), "ORG/dense-7b") << "names stay as the caller wrote them";
  EXPECT_EQ(out.hardware().accelerator(), "g1 (OLD LABEL)");
  EXPECT_EQ(out.model().layers(), 32u);
  EXPECT_DOUBLE_EQ(out.hardware().memory_bandwidth_gbps(), 3350);
}

TEST(FillDescriptorsTest, TableZerosAreUnknownNotValues) {
  const auto tables = SmallTables();
  v1::TaskContext out;
  const auto filled = Fill(tables, Named("acme/Unknown-1B", "Vendor N1"), &out);
  EXPECT_THAT(filled, ElementsAre("context.hardware.memory_gb", "context.hardware.peak_tflops",
                                  "context.hardware.interconnect"));
  EXPECT_EQ(out.hardware().memory_bandwidth_gbps(), 0);
}

TEST(FillDescriptorsTest, ExpertsAreFilledOnlyWhereTheyFitTheCallersValue) {
  const auto tables = SmallTables();
  v1::TaskContext out;
  EXPECT_THAT(Fill(tables, Named("org/MoE-8x7B", "Acme X1"), &out),
              ::testing::IsSupersetOf({"context.model.experts", "context.model.active_experts"}));
  EXPECT_EQ(out.model().experts(), 8u);
  EXPECT_EQ(out.model().active_experts(), 2u);

  // The caller's active_experts beyond the table's experts: experts stays unknown, so the context stays valid.
  v1::TaskContext many = Named("org/MoE-8x7B", "Acme X1");
  many.mutable_model()->set_active_experts(16);
  v1::TaskContext out_many;
  const auto filled_many = Fill(tables, many, &out_many);
  EXPECT_THAT(filled_many, ::testing::Not(::testing::Contains("context.model.experts")));
  EXPECT_EQ(out_many.model().experts(), 0u);
  EXPECT_EQ(out_many.model().active_experts(), 16u);

  // The caller's experts below the table's active_experts: active_experts stays unknown.
  v1::TaskContext dense_claim = Named("org/MoE-8x7B", "Acme X1");
  dense_claim.mutable_model()->set_experts(1);
  v1::TaskContext out_dense;
  const auto filled_dense = Fill(tables, dense_claim, &out_dense);
  EXPECT_THAT(filled_dense, ::testing::Not(::testing::Contains("context.model.active_experts")));
  EXPECT_EQ(out_dense.model().experts(), 1u);
  EXPECT_EQ(out_dense.model().active_experts(), 0u);
}

TEST(FillDescriptorsTest, FillsInPlace) {
  const auto tables = SmallTables();
  v1::TaskContext c = Named("org/MoE-8x7B", "Vendor G1");
  c.mutable_hardware()->set_peak_tflops(500);
  const auto filled = Fill(tables, c, &c);
  EXPECT_THAT(filled, ::testing::Contains("context.model.active_experts"));
  EXPECT_THAT(filled, ::testing::Not(::testing::Contains("context.hardware.peak_tflops")));
  EXPECT_EQ(c.model().experts(), 8u);
  EXPECT_EQ(c.model().active_experts(), 2u);
  EXPECT_DOUBLE_EQ(c.hardware().peak_tflops(), 500);
  EXPECT_DOUBLE_EQ(c.hardware().memory_gb(), 80);
}

// ---------------------------------------------------------------------------------------------------------------
// Against the real server with the bundled tables.

constexpr char kLlama3[] = "meta-llama/Meta-Llama-3-8B";
constexpr char kH100[] = "Nvidia H100 GPU";

class ServerFillTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(SourceFile("data/descriptors")); }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  void Start(const std::string& descriptors_dir) {
    auto o = TestOptions(FreshDir("descriptor-fill"));
    o.descriptors_dir = descriptors_dir;
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    conn_ = Connect(server_->port());
    for (const char* id : {"vllm", "tensorrt-llm"}) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      v1::RegisterStrategyRequest req;
      *req.mutable_strategy() = MakeStrategy(id);
      v1::RegisterStrategyResponse resp;
      ASSERT_TRUE(conn_.selector->RegisterStrategy(&ctx, req, &resp).ok());
    }
  }

  grpc::Status Select(const v1::TaskContext& context, v1::SelectAcceleratorResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = context;
    req.set_node_id("node-1");
    return conn_.selector->SelectAccelerator(&ctx, req, resp);
  }

  // The decision as the log stored it.
  v1::LoggedDecision Logged(const std::string& decision_id) {
    server_->core().decisions().Flush();
    auto bytes = server_->core().store()->GetDecision(decision_id);
    v1::LoggedDecision d;
    EXPECT_TRUE(bytes.ok() && bytes->has_value()) << decision_id;
    if (bytes.ok() && bytes->has_value()) {
      EXPECT_TRUE(d.ParseFromString(**bytes));
    }
    return d;
  }

  std::vector<v1::RunAck> Report(const std::vector<v1::RunReport>& reports) {
    grpc::ClientContext ctx;
    return ReportAll(*conn_.selector, reports, &ctx);
  }

  const v1::Recommendation* Find(const v1::SelectAcceleratorResponse& resp, const std::string& id) {
    for (const auto& r : resp.recommendations()) {
      if (r.strategy().id() == id) return &r;
    }
    ADD_FAILURE() << id << " not ranked";
    return nullptr;
  }

  std::unique_ptr<server::Server> server_;
  Connection conn_;
};

TEST_F(ServerFillTest, NamesOnlyAreFilledListedRankedAndLogged) {
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(Select(Named(kLlama3, kH100), &resp).ok());
  EXPECT_THAT(
      resp.filled_fields(),
      ElementsAre("context.model.family", "context.model.parameters_b", "context.model.layers",
                  "context.model.hidden_size", "context.model.attention_heads", "context.model.kv_heads",
                  "context.model.weight_dtype", "context.hardware.memory_gb", "context.hardware.memory_bandwidth_gbps",
                  "context.hardware.peak_tflops", "context.hardware.interconnect"));
  ASSERT_EQ(resp.recommendations_size(), 2);

  const v1::LoggedDecision d = Logged(resp.decision_id());
  EXPECT_EQ(d.context().model().name(), kLlama3);
  EXPECT_EQ(d.context().model().weight_dtype(), "bf16");
  EXPECT_EQ(d.context().model().layers(), 32u);
  EXPECT_DOUBLE_EQ(d.context().hardware().memory_bandwidth_gbps(), 3350);
  EXPECT_DOUBLE_EQ(d.context().hardware().peak_tflops(), 989);
  EXPECT_EQ(d.context().hardware().interconnect(), "nvlink");
  // The logged key is the filled context's, the one the selector ranked.
  EXPECT_EQ(d.context_key(), model::ContextKey(FromProto(d.context())));
  EXPECT_NE(d.context_key(), model::ContextKey(FromProto(Named(kLlama3, kH100))));
}

TEST_F(ServerFillTest, CallerSetFieldsAreKept) {
  v1::TaskContext c = Named(kLlama3, kH100);
  c.mutable_model()->set_weight_dtype("fp8");
  c.mutable_hardware()->set_memory_bandwidth_gbps(2000);
  c.mutable_hardware()->set_peak_tflops(756);
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(Select(c, &resp).ok());
  EXPECT_THAT(resp.filled_fields(), ::testing::Contains("context.hardware.memory_gb"));
  for (const char* kept :
       {"context.model.weight_dtype", "context.hardware.memory_bandwidth_gbps", "context.hardware.peak_tflops"}) {
    EXPECT_THAT(resp.filled_fields(), ::testing::Not(::testing::Contains(kept)));
  }
  const v1::LoggedDecision d = Logged(resp.decision_id());
  EXPECT_EQ(d.context().model().weight_dtype(), "fp8");
  EXPECT_DOUBLE_EQ(d.context().hardware().memory_bandwidth_gbps(), 2000);
  EXPECT_DOUBLE_EQ(d.context().hardware().peak_tflops(), 756);
  EXPECT_DOUBLE_EQ(d.context().hardware().memory_gb(), 80);
}

TEST_F(ServerFillTest, UnknownNamesAreAnsweredWithNothingFilled) {
  const v1::TaskContext c = Named("acme/Unknown-1B", "Acme X1");
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(Select(c, &resp).ok());
  EXPECT_THAT(resp.filled_fields(), IsEmpty());
  EXPECT_EQ(resp.recommendations_size(), 2);
  EXPECT_EQ(Logged(resp.decision_id()).context().SerializeAsString(), c.SerializeAsString());

  // A known model on an unknown accelerator: only the model's fields.
  v1::SelectAcceleratorResponse half;
  ASSERT_TRUE(Select(Named(kLlama3, "Acme X1"), &half).ok());
  EXPECT_THAT(half.filled_fields(), ::testing::Contains("context.model.weight_dtype"));
  for (const auto& path : half.filled_fields()) EXPECT_THAT(path, HasSubstr("context.model.")) << path;
}

TEST_F(ServerFillTest, NamesMatchIgnoringCaseAndByLabel) {
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(Select(Named("META-LLAMA/meta-llama-3-8b", "intel pvc gpu"), &resp).ok());
  EXPECT_THAT(resp.filled_fields(), ::testing::Contains("context.model.layers"));
  EXPECT_THAT(resp.filled_fields(), ::testing::Contains("context.hardware.memory_bandwidth_gbps"));
  const v1::LoggedDecision d = Logged(resp.decision_id());
  EXPECT_EQ(d.context().model().name(), "META-LLAMA/meta-llama-3-8b");
  EXPECT_EQ(d.context().hardware().accelerator(), "intel pvc gpu");
  EXPECT_DOUBLE_EQ(d.context().hardware().memory_bandwidth_gbps(), 3277);
  EXPECT_EQ(d.context().hardware().interconnect(), "xe-link");
}

TEST_F(ServerFillTest, CountZeroIsStillRefused) {
  v1::TaskContext c = Named(kLlama3, kH100);
  c.mutable_hardware()->set_count(0);
  v1::SelectAcceleratorResponse resp;
  grpc::Status st = Select(c, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("context.hardware.count"));
}

TEST_F(ServerFillTest, RunsReportedByNameLandInTheContextSelectedByName) {
  v1::RunReport r;
  r.set_run_id("named-run-1");
  r.set_node_id("node-1");
  *r.mutable_context() = Named(kLlama3, kH100);
  r.set_strategy_id("vllm");
  r.set_status(v1::RUN_STATUS_OK);
  r.mutable_metrics()->set_e2e_latency_ms(5000);
  const auto acks = Report({r});
  ASSERT_EQ(acks.size(), 1u);
  ASSERT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE) << acks[0].reason();

  // Stored filled, by the same rules.
  bool seen = false;
  ASSERT_TRUE(server_->core()
                  .store()
                  ->ScanRuns(0,
                             [&](const v1::RunReport& stored) {
                               if (stored.run_id() != "named-run-1") return true;
                               seen = true;
                               EXPECT_EQ(stored.context().model().weight_dtype(), "bf16");
                               EXPECT_EQ(stored.context().model().layers(), 32u);
                               EXPECT_DOUBLE_EQ(stored.context().hardware().memory_bandwidth_gbps(), 3350);
                               return false;
                             })
                  .ok());
  EXPECT_TRUE(seen);

  // By name, and with the descriptors written out as the table has them: the same context, the run observed.
  v1::TaskContext spelled = Named(kLlama3, kH100);
  auto* m = spelled.mutable_model();
  m->set_family("llama");
  m->set_parameters_b(8.03);
  m->set_layers(32);
  m->set_hidden_size(4096);
  m->set_attention_heads(32);
  m->set_kv_heads(8);
  m->set_weight_dtype("bf16");
  for (const v1::TaskContext& c : {Named(kLlama3, kH100), spelled}) {
    v1::SelectAcceleratorResponse resp;
    ASSERT_TRUE(Select(c, &resp).ok());
    const v1::Recommendation* vllm = Find(resp, "vllm");
    ASSERT_NE(vllm, nullptr);
    EXPECT_EQ(vllm->evidence_layer(), v1::EVIDENCE_LAYER_OBSERVED);
    EXPECT_EQ(vllm->evidence_count(), 1u);
  }
}

TEST(ServerFillStartTest, WithoutTablesNothingIsFilledAndBrokenTablesStopTheStart) {
  const std::string dir = FreshDir("descriptor-fill-start");
  {
    auto o = TestOptions(dir + "/none");
    o.descriptors_dir = dir + "/no-such-folder";
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    Connection conn = Connect((*s)->port());
    {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      v1::RegisterStrategyRequest req;
      *req.mutable_strategy() = MakeStrategy("vllm");
      v1::RegisterStrategyResponse resp;
      ASSERT_TRUE(conn.selector->RegisterStrategy(&ctx, req, &resp).ok());
    }
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = Named(kLlama3, kH100);
    v1::SelectAcceleratorResponse resp;
    ASSERT_TRUE(conn.selector->SelectAccelerator(&ctx, req, &resp).ok());
    EXPECT_THAT(resp.filled_fields(), IsEmpty());
    (*s)->Shutdown();
  }
  const std::string broken = dir + "/broken";
  std::filesystem::create_directories(broken);
  std::ofstream(broken + "/models.csv") << "name,family\nx,llama\n";
  auto o = TestOptions(dir + "/broken-data");
  o.descriptors_dir = broken;
  auto s = server::Server::Start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--descriptors_dir"));
}

}  // namespace
}  // namespace accelsel::testing
