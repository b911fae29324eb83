// A store written by an earlier release opens and serves with this build: tests/fixtures/store_v1/store.tar.gz was
// made by tests/fixtures/make_store_fixture.sh with the binaries of commit 58eafc0 (tests/fixtures/README.md). The
// figures below are what that script put in it; keep them in step when the fixture is regenerated.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/meta_model.h"
#include "storage/telemetry_store.h"
#include "tests/server/test_server.h"

namespace accelsel {
namespace {

using ::accelsel::testing::Connect;
using ::accelsel::testing::Connection;
using ::accelsel::testing::FreshDir;
using ::accelsel::testing::SetDeadline;
using ::accelsel::testing::TestOptions;
using ::testing::ElementsAre;

constexpr uint64_t kFixtureRuns = 604;      // 597 seeded (1 in 8 of the bundled table) + 3 custom + 4 liar
constexpr uint64_t kFixtureStrategies = 7;  // the table's six engines + fixture-custom:fp8
constexpr char kCustomId[] = "fixture-custom:fp8";
constexpr char kLiar[] = "fixture-liar";

// The context of the fixture's reported runs: Llama 3 8B on one H100, 512 tokens in and out, batch 16.
v1::TaskContext FixtureContext() {
  v1::TaskContext c;
  auto* m = c.mutable_model();
  m->set_name("meta-llama/Meta-Llama-3-8B");
  m->set_family("llama");
  m->set_parameters_b(8.03);
  m->set_layers(32);
  m->set_hidden_size(4096);
  m->set_attention_heads(32);
  m->set_kv_heads(8);
  m->set_weight_dtype("bf16");
  auto* h = c.mutable_hardware();
  h->set_accelerator("Nvidia H100 GPU");
  h->set_count(1);
  h->set_memory_gb(80);
  h->set_memory_bandwidth_gbps(3350);
  h->set_peak_tflops(989);
  h->set_interconnect("nvlink");
  auto* w = c.mutable_workload();
  w->set_prompt_tokens(512);
  w->set_output_tokens(512);
  w->set_batch_size(16);
  return c;
}

class StoreCompatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* source = std::getenv("ACCELSEL_SOURCE_DIR");
    ASSERT_NE(source, nullptr);
    const std::string tarball = absl::StrCat(source, "/tests/fixtures/store_v1/store.tar.gz");
    ASSERT_TRUE(std::filesystem::exists(tarball)) << tarball;
    dir_ = FreshDir("store-compat");
    // A copy: opening a store writes to it (WAL, MANIFEST), and the fixture must stay as the old release left it.
    ASSERT_EQ(std::system(absl::StrCat("tar -xzf '", tarball, "' -C '", dir_, "'").c_str()), 0);
    data_dir_ = dir_ + "/store";
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::string data_dir_;
};

TEST_F(StoreCompatTest, TheStoreOpensAtThisSchemaAndReadsBack) {
  storage::StoreOptions options;
  options.path = data_dir_;
  auto opened = storage::TelemetryStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  storage::TelemetryStore& store = **opened;
  EXPECT_EQ(store.GetMeta("schema_version")->value_or(""), absl::StrCat(storage::kSchemaVersion));

  EXPECT_EQ(store.RunCount(), kFixtureRuns);
  uint64_t scanned = 0;
  int64_t last_time = INT64_MIN;
  bool ordered = true;
  ASSERT_TRUE(store
                  .ScanRuns(INT64_MIN,
                            [&](const v1::RunReport& run) {
                              ordered = ordered && run.time_unix_ms() >= last_time;
                              last_time = run.time_unix_ms();
                              ++scanned;
                              return true;
                            })
                  .ok());
  EXPECT_EQ(scanned, kFixtureRuns);
  EXPECT_TRUE(ordered);

  auto custom = store.GetRun("fixture-custom-2");
  ASSERT_TRUE(custom.ok()) << custom.status();
  EXPECT_EQ(custom->node_id(), "fixture-node");
  EXPECT_EQ(custom->strategy_id(), kCustomId);  // stored by id; the definition went to the catalogue
  EXPECT_FALSE(custom->has_strategy());
  EXPECT_EQ(custom->time_unix_ms(), 1764150002000);
  EXPECT_DOUBLE_EQ(custom->metrics().e2e_latency_ms(), 4020);
  EXPECT_EQ(custom->context().hardware().accelerator(), "Nvidia H100 GPU");
  EXPECT_EQ(custom->schema_version(), 1u);
  auto liar = store.GetRun("fixture-liar-3");
  ASSERT_TRUE(liar.ok()) << liar.status();
  EXPECT_EQ(liar->node_id(), kLiar);  // quarantined runs stay stored
  EXPECT_EQ(liar->strategy_id(), "llama.cpp");

  auto strategies = store.ListStrategies();
  ASSERT_TRUE(strategies.ok()) << strategies.status();
  ASSERT_EQ(strategies->size(), kFixtureStrategies);
  const v1::Strategy* definition = nullptr;
  for (const v1::Strategy& s : *strategies) {
    if (s.id() == kCustomId) definition = &s;
  }
  ASSERT_NE(definition, nullptr);
  EXPECT_EQ(definition->description(), "fixture: vLLM with FP8 weights");
  ASSERT_EQ(definition->components_size(), 2);
  EXPECT_EQ(definition->components(1).method(), "quant");
  EXPECT_EQ(definition->components(1).value(), "fp8");

  auto models = store.ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].version(), 1u);
  EXPECT_TRUE((*models)[0].promoted());
  auto blob = store.GetModel(1);
  ASSERT_TRUE(blob.ok()) << blob.status();
  auto model = model::MetaModel::Deserialize(blob->blob, 1);
  EXPECT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(store.GetMeta("serving_version")->value_or(""), "1");
  EXPECT_EQ(store.GetMeta("quarantined_nodes")->value_or(""), kLiar);
}

TEST_F(StoreCompatTest, AServerOnItServesTheStoredModelKeepsTheQuarantineAndTheCustomStrategy) {
  auto started = server::Server::Start(TestOptions(data_dir_));
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<server::Server> server = *std::move(started);
  Connection conn = Connect(server->port());

  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::GetModelInfoResponse info;
    ASSERT_TRUE(conn.selector->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info).ok());
    EXPECT_EQ(info.serving_version(), 1u);
    EXPECT_EQ(info.serving().version(), 1u);
    EXPECT_EQ(info.runs_stored(), kFixtureRuns);
    EXPECT_EQ(info.strategies(), kFixtureStrategies);
  }
  {  // The stored model answers (model_version 1, not statistics only); the custom strategy's runs are observed.
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = FixtureContext();
    v1::SelectAcceleratorResponse resp;
    grpc::Status st = conn.selector->SelectAccelerator(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.model_version(), 1u);
    EXPECT_EQ(static_cast<uint64_t>(resp.recommendations_size()), kFixtureStrategies);
    bool saw_custom = false, saw_model_layer = false;
    for (const v1::Recommendation& r : resp.recommendations()) {
      if (r.evidence_layer() == v1::EVIDENCE_LAYER_MODEL) saw_model_layer = true;
      if (r.strategy().id() == kCustomId) {
        saw_custom = true;
        EXPECT_EQ(r.evidence_layer(), v1::EVIDENCE_LAYER_OBSERVED);
        EXPECT_EQ(r.evidence_count(), 3u);
        EXPECT_EQ(r.strategy().description(), "fixture: vLLM with FP8 weights");
      }
      if (r.strategy().id() == "llama.cpp") {
        // The quarantined node's 101-104 ms claims do not count.
        EXPECT_GT(r.expected_latency_ms(), 1000) << r.DebugString();
      }
    }
    EXPECT_TRUE(saw_custom);
    EXPECT_TRUE(saw_model_layer) << resp.DebugString();
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::QuarantineNodeResponse resp;
    ASSERT_TRUE(conn.admin->QuarantineNode(&ctx, v1::QuarantineNodeRequest(), &resp).ok());
    EXPECT_THAT(resp.quarantined(), ElementsAre(kLiar));
  }
  {  // The old store takes new reports and still knows its run_ids.
    v1::RunReport fresh;
    fresh.set_run_id("after-upgrade-1");
    fresh.set_node_id("fixture-node");
    *fresh.mutable_context() = FixtureContext();
    fresh.set_strategy_id(kCustomId);
    fresh.set_status(v1::RUN_STATUS_OK);
    fresh.mutable_metrics()->set_e2e_latency_ms(4050);
    v1::RunReport resend = fresh;
    resend.set_run_id("fixture-custom-1");
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto stream = conn.selector->ReportRun(&ctx);
    ASSERT_TRUE(stream->Write(fresh));
    ASSERT_TRUE(stream->Write(resend));
    stream->WritesDone();
    std::vector<v1::RunAck::Result> results;
    v1::RunAck ack;
    while (stream->Read(&ack)) results.push_back(ack.result());
    ASSERT_TRUE(stream->Finish().ok());
    EXPECT_THAT(results, ElementsAre(v1::RunAck::RESULT_DURABLE, v1::RunAck::RESULT_DUPLICATE));
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::GetModelInfoResponse info;
    ASSERT_TRUE(conn.selector->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info).ok());
    EXPECT_EQ(info.runs_stored(), kFixtureRuns + 1);
  }
  server->Shutdown();
}

}  // namespace
}  // namespace accelsel
