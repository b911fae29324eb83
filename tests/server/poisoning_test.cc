// Poisoning resistance: ten honest nodes and one liar that sends ten times as many fabricated reports as all
// honest nodes together. The observed statistics, a model retrained on node-share-capped data, and the running
// server (its selection and its suspect metric) must keep the honest top-1 strategy in every context.
#include <fstream>
#include <map>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/meta_model.h"
#include "model/observed_stats.h"
#include "model/robust.h"
#include "proto/convert.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

constexpr uint32_t kBatches[] = {1, 2, 4, 8, 16};
const char* const kStrategies[] = {"fast", "middle", "slow"};
constexpr int kHonestNodes = 10;
constexpr int kHonestRunsPerCell = 5;  // per node, per (context, strategy)
constexpr int kLiarFactor = 10;        // the liar sends 10x the honest total

// True latency of each strategy; "fast" wins everywhere.
double TrueMs(const std::string& strategy, uint32_t batch) {
  const double base = 200.0 * (1.0 + 0.3 * batch);
  if (strategy == "fast") return base;
  if (strategy == "middle") return base * 1.5;
  return base * 2.0;
}
// What the liar claims: "middle" is the fastest by far, "fast" is slow.
double LieMs(const std::string& strategy, uint32_t batch) {
  const double base = 200.0 * (1.0 + 0.3 * batch);
  if (strategy == "fast") return base * 3.0;
  if (strategy == "middle") return base * 0.5;
  return base * 2.0;
}

std::vector<v1::RunReport> MakeReports(bool include_liar) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> noise(0.95, 1.05);
  std::vector<v1::RunReport> out;
  int n = 0;
  for (uint32_t b : kBatches) {
    for (const char* s : kStrategies) {
      for (int node = 0; node < kHonestNodes; ++node) {
        for (int i = 0; i < kHonestRunsPerCell; ++i) {
          out.push_back(
              MakeReport(absl::StrCat("h-", n++), s, b, TrueMs(s, b) * noise(rng), absl::StrCat("honest-", node)));
        }
      }
      if (!include_liar) continue;
      for (int i = 0; i < kHonestNodes * kHonestRunsPerCell * kLiarFactor; ++i) {
        out.push_back(MakeReport(absl::StrCat("l-", n++), s, b, LieMs(s, b) * noise(rng), "liar"));
      }
    }
  }
  // Interleave so the liar's reports do not all arrive after the honest ones.
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

TEST(PoisoningTest, ObservedStatisticsKeepHonestTop1AndFlagTheLiar) {
  const auto reports = MakeReports(true);
  model::ObservedStats stats;
  uint64_t liar_flags = 0, honest_flags = 0, liar_reports = 0, honest_reports = 0;
  std::map<std::pair<uint32_t, std::string>, std::vector<double>> pooled;  // the naive aggregation, for contrast
  for (const auto& r : reports) {
    const model::RunRecord rec = FromProto(r);
    const bool liar = rec.node_id == "liar";
    (liar ? liar_reports : honest_reports)++;
    if (stats.AddChecked(rec).suspect) (liar ? liar_flags : honest_flags)++;
    pooled[{r.context().workload().batch_size(), rec.strategy_id}].push_back(rec.metrics.e2e_latency_ms);
  }
  // The liar is flagged on most of its reports once the honest nodes have spoken; honest nodes hardly ever.
  EXPECT_GT(liar_flags, liar_reports / 2) << liar_flags << " of " << liar_reports;
  EXPECT_LT(honest_flags, honest_reports / 100 + 1) << honest_flags << " of " << honest_reports;
  for (uint32_t b : kBatches) {
    const model::TaskContext ctx = FromProto(MakeContext(b));
    std::map<double, std::string> ranked;
    for (const char* s : kStrategies) {
      auto sum = stats.Exact(ctx, s, model::Objective::kE2eLatency, 0.8);
      ASSERT_TRUE(sum.has_value());
      EXPECT_NEAR(sum->median, TrueMs(s, b), 0.1 * TrueMs(s, b)) << s << " batch " << b;
      ranked[sum->median] = s;
    }
    EXPECT_EQ(ranked.begin()->second, "fast") << "batch " << b;
    // The attack is real: a pooled median over all reports would pick the liar's favourite.
    std::map<double, std::string> naive;
    for (const char* s : kStrategies) {
      auto v = pooled[{b, s}];
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      naive[v[v.size() / 2]] = s;
    }
    EXPECT_EQ(naive.begin()->second, "middle") << "batch " << b;
  }
}

TEST(PoisoningTest, NodeShareWeightsCapTheLiar) {
  std::vector<model::RunRecord> runs;
  for (const auto& r : MakeReports(true)) runs.push_back(FromProto(r));
  const auto w = model::ComputeRunWeights(runs);
  std::map<uint32_t, std::map<std::string, double>> weight;  // batch -> node -> total weight
  for (size_t i = 0; i < runs.size(); ++i) {
    weight[runs[i].context.workload.batch_size][runs[i].node_id] += w[i];
    if (runs[i].node_id != "liar") {
      EXPECT_EQ(w[i], 1.0);
    }
  }
  for (const auto& [batch, by_node] : weight) {
    double total = 0;
    for (const auto& [node, v] : by_node) total += v;
    EXPECT_LE(by_node.at("liar") / total, 0.1 + 1e-9) << "batch " << batch;
  }
  // One node alone keeps all its weight.
  std::vector<model::RunRecord> solo(runs.begin(), runs.begin() + 1);
  EXPECT_EQ(model::ComputeRunWeights(solo)[0], 1.0);
}

// Trains a MetaModel and returns, per batch size, whether "fast" is predicted fastest.
std::map<uint32_t, bool> TrainAndCheckTop1(const std::vector<model::RunRecord>& runs) {
  model::TrainOptions to;
  to.xgb.nthread = 1;
  std::vector<model::Strategy> strategies;
  for (const char* s : kStrategies) strategies.push_back(FromProto(MakeStrategy(s)));
  to.catalog = strategies;
  auto m = model::MetaModel::Train(runs, to);
  EXPECT_TRUE(m.ok()) << m.status();
  std::map<uint32_t, bool> out;
  if (!m.ok()) return out;
  std::vector<const model::Strategy*> ptrs;
  for (const auto& s : strategies) ptrs.push_back(&s);
  for (uint32_t b : kBatches) {
    std::vector<model::Prediction> pred;
    (*m)->Predict(FromProto(MakeContext(b)), ptrs, model::Objective::kE2eLatency, &pred);
    out[b] = pred.size() == 3 && pred[0].expected < pred[1].expected && pred[0].expected < pred[2].expected;
  }
  return out;
}

TEST(PoisoningTest, RetrainedModelKeepsHonestTop1) {
  std::vector<model::RunRecord> runs;
  for (const auto& r : MakeReports(true)) runs.push_back(FromProto(r));
  // The attack is real for the model too: trained on everything, it follows the liar.
  int flipped = 0;
  for (const auto& [batch, honest] : TrainAndCheckTop1(runs)) flipped += honest ? 0 : 1;
  EXPECT_GE(flipped, 3);
  const size_t before = runs.size();
  runs = model::ThinByNodeShare(std::move(runs));
  EXPECT_LT(runs.size(), before / 5);  // most of the flood is dropped
  const auto top1 = TrainAndCheckTop1(runs);
  ASSERT_EQ(top1.size(), std::size(kBatches));
  for (const auto& [batch, honest] : top1) EXPECT_TRUE(honest) << "batch " << batch;
}

// The running server: reports through ReportRun, attributed by token; selection and the suspect metric.
TEST(PoisoningTest, ServerSelectionAndSuspectMetric) {
  const std::string dir = FreshDir("poison-server");
  {
    std::ofstream tokens(dir + "/tokens");
    tokens << "operator-token-000000 operator ops\n";
    for (int i = 0; i < kHonestNodes; ++i) tokens << "honest-token-" << 1000000 + i << " node honest-" << i << "\n";
    tokens << "liar-token-0000000000 node liar\n";
  }
  auto o = TestOptions(dir);
  o.access.auth_tokens_file = dir + "/tokens";
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto conn = Connect((*s)->port());
  for (const char* id : kStrategies) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ctx.AddMetadata("authorization", "Bearer operator-token-000000");
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = MakeStrategy(id);
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }
  // Group by claimed node; each node streams with its own token. The liar also claims to be honest-0.
  std::map<std::string, std::vector<v1::RunReport>> by_node;
  for (auto r : MakeReports(true)) {
    const std::string node = r.node_id();
    if (node == "liar") r.set_node_id("honest-0");
    by_node[node].push_back(std::move(r));
  }
  for (const auto& [node, reports] : by_node) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    const std::string token =
        node == "liar" ? "liar-token-0000000000" : absl::StrCat("honest-token-", 1000000 + std::stoi(node.substr(7)));
    ctx.AddMetadata("authorization", "Bearer " + token);
    auto stream = conn.selector->ReportRun(&ctx);
    for (const auto& r : reports) ASSERT_TRUE(stream->Write(r));
    stream->WritesDone();
    v1::RunAck ack;
    size_t acks = 0;
    while (stream->Read(&ack)) acks += ack.result() == v1::RunAck::RESULT_DURABLE;
    ASSERT_TRUE(stream->Finish().ok());
    ASSERT_EQ(acks, reports.size()) << node;
  }
  for (uint32_t b : kBatches) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ctx.AddMetadata("authorization", "Bearer honest-token-1000003");
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(b);
    v1::SelectAcceleratorResponse resp;
    ASSERT_TRUE(conn.selector->SelectAccelerator(&ctx, req, &resp).ok());
    ASSERT_GT(resp.recommendations_size(), 0);
    EXPECT_EQ(resp.recommendations(0).strategy().id(), "fast") << "batch " << b;
  }
  std::map<std::string, double> suspect;
  for (const auto& family : (*s)->core().metrics()->registry().Collect()) {
    if (family.name != "accelsel_suspect_node_reports_total") continue;
    for (const auto& m : family.metric) suspect[m.label.at(0).value] = m.counter.value;
  }
  EXPECT_GT(suspect["liar"], 1000);
  for (int i = 0; i < kHonestNodes; ++i) EXPECT_LT(suspect[absl::StrCat("honest-", i)], 10) << i;
  (*s)->Shutdown();
}

// An operator quarantines a node known to be bad: its runs stop counting at once, the quarantine survives a
// restart, and releasing it brings them back. Without tokens every caller is an operator.
TEST(PoisoningTest, QuarantinedNodeStopsCountingAcrossRestartsUntilReleased) {
  const std::string dir = FreshDir("poison-quarantine");
  auto start = [&] {
    auto s = server::Server::Start(TestOptions(dir));
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  };
  auto server = start();
  auto conn = Connect(server->port());
  for (const char* id : {"fast", "slow"}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = MakeStrategy(id);
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }
  {  // Batch 4: honest nodes ran only "fast" (100 ms); one node claims "slow" takes 10 ms.
    std::vector<v1::RunReport> reports;
    for (int i = 0; i < 6; ++i) reports.push_back(MakeReport(absl::StrCat("h", i), "fast", 4, 100, "honest-1"));
    for (int i = 0; i < 6; ++i) reports.push_back(MakeReport(absl::StrCat("l", i), "slow", 4, 10, "bad-node"));
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    auto stream = conn.selector->ReportRun(&ctx);
    for (const auto& r : reports) ASSERT_TRUE(stream->Write(r));
    stream->WritesDone();
    v1::RunAck ack;
    while (stream->Read(&ack)) ASSERT_EQ(ack.result(), v1::RunAck::RESULT_DURABLE);
    ASSERT_TRUE(stream->Finish().ok());
  }
  auto first = [&](const Connection& c) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(4);
    v1::SelectAcceleratorResponse resp;
    EXPECT_TRUE(c.selector->SelectAccelerator(&ctx, req, &resp).ok());
    return resp.recommendations_size() > 0 ? resp.recommendations(0).strategy().id() : std::string();
  };
  auto quarantine = [&](const Connection& c, const std::string& node, bool release) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::QuarantineNodeRequest req;
    req.set_node_id(node);
    req.set_release(release);
    v1::QuarantineNodeResponse resp;
    grpc::Status st = c.admin->QuarantineNode(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  };
  EXPECT_EQ(first(conn), "slow");  // the lie stands while nothing contradicts it
  auto r = quarantine(conn, "bad-node", false);
  EXPECT_TRUE(r.changed());
  EXPECT_THAT(r.quarantined(), ::testing::ElementsAre("bad-node"));
  EXPECT_EQ(first(conn), "fast");
  EXPECT_FALSE(quarantine(conn, "bad-node", false).changed());
  {  // A bad id is refused by name.
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::QuarantineNodeRequest req;
    req.set_node_id("bad node\n");
    v1::QuarantineNodeResponse resp;
    grpc::Status st = conn.admin->QuarantineNode(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), ::testing::HasSubstr("node_id"));
  }
  server->Shutdown();
  server.reset();
  server = start();
  auto again = Connect(server->port());
  EXPECT_EQ(first(again), "fast");
  EXPECT_THAT(quarantine(again, "", false).quarantined(), ::testing::ElementsAre("bad-node"));
  EXPECT_TRUE(quarantine(again, "bad-node", true).changed());
  EXPECT_EQ(first(again), "slow");
  server->Shutdown();
}

}  // namespace
}  // namespace accelsel::testing
