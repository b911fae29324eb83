// Cluster mode for live quality: the merge of several replicas' figures (hand-worked numbers), and end to end on a
// nats-server with JetStream (a child process) and two accelsel replicas in this process: decisions served by
// either replica, reports through either, and GetLiveQuality on one replica counting them all.
#include "server/cluster_quality.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cluster/coordination.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "server/service_core.h"
#include "tests/cluster/nats_server.h"
#include "tests/cluster/replica.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

v1::LiveQuality Figures(uint64_t decisions, uint64_t joined, uint64_t scored, uint64_t regrets, double mape,
                        double coverage, double follow, double explore, double regret, uint64_t failures,
                        double predicted) {
  v1::LiveQuality q;
  q.set_decisions(decisions);
  q.set_joined_reports(joined);
  q.set_scored_reports(scored);
  q.set_regret_reports(regrets);
  q.set_mape(mape);
  q.set_coverage80(coverage);
  q.set_follow_rate(follow);
  q.set_exploration_share(explore);
  q.set_mean_regret_log(regret);
  q.set_failures_seen(failures);
  q.set_failures_predicted(predicted);
  return q;
}

TEST(MergeLiveQualityTest, WeighsEachFigureByItsBase) {
  const v1::LiveQuality a = Figures(10, 4, 2, 1, 0.10, 0.5, 0.75, 0.1, 0.2, 1, 0.5);
  const v1::LiveQuality b = Figures(30, 12, 6, 3, 0.30, 1.0, 0.25, 0.2, 0.6, 2, 1.25);
  const v1::LiveQuality m = server::MergeLiveQualityFigures({&a, &b});
  EXPECT_EQ(m.decisions(), 40u);
  EXPECT_EQ(m.joined_reports(), 16u);
  EXPECT_EQ(m.scored_reports(), 8u);
  EXPECT_EQ(m.regret_reports(), 4u);
  EXPECT_EQ(m.failures_seen(), 3u);
  EXPECT_DOUBLE_EQ(m.failures_predicted(), 1.75);
  EXPECT_DOUBLE_EQ(m.mape(), (2 * 0.10 + 6 * 0.30) / 8);                // 0.25, by scored
  EXPECT_DOUBLE_EQ(m.coverage80(), (2 * 0.5 + 6 * 1.0) / 8);            // 0.875, by scored
  EXPECT_DOUBLE_EQ(m.follow_rate(), (4 * 0.75 + 12 * 0.25) / 16);       // 0.375, by joined
  EXPECT_DOUBLE_EQ(m.exploration_share(), (10 * 0.1 + 30 * 0.2) / 40);  // 0.175, by decisions
  EXPECT_DOUBLE_EQ(m.mean_regret_log(), (1 * 0.2 + 3 * 0.6) / 4);       // 0.5, by regret_reports

  // A part without regret_reports (an older replica): its followed joins weigh its regret, 4 x 0.75 = 3.
  v1::LiveQuality old = a;
  old.clear_regret_reports();
  const v1::LiveQuality n = server::MergeLiveQualityFigures({&old, &b});
  EXPECT_DOUBLE_EQ(n.mean_regret_log(), (3 * 0.2 + 3 * 0.6) / 6);  // 0.4

  // Nothing to weigh: 0, not NaN.
  const v1::LiveQuality empty;
  const v1::LiveQuality e = server::MergeLiveQualityFigures({&empty, &empty});
  EXPECT_EQ(e.mape(), 0);
  EXPECT_EQ(e.follow_rate(), 0);
}

TEST(MergeLiveQualityTest, MergesVersionsAndNodesAndCutsTheNodes) {
  v1::GetLiveQualityResponse a;
  a.set_window_ms(3600000);
  a.set_decision_log_enabled(true);
  a.set_replicas(1);
  a.add_replica_ids("r2");
  *a.mutable_overall() = Figures(10, 4, 2, 0, 0.10, 0.5, 0.75, 0.1, 0, 0, 0);
  auto* av = a.add_versions();
  av->set_version(3);
  *av->mutable_live() = Figures(6, 2, 2, 0, 0.10, 0.5, 1, 0, 0, 0, 0);
  av = a.add_versions();
  av->set_version(2);
  av->mutable_holdout()->set_holdout_mape(0.07);
  *av->mutable_live() = Figures(4, 2, 0, 0, 0, 0, 0.5, 0.25, 0, 0, 0);
  auto* an = a.add_nodes();
  an->set_node_id("n1");
  *an->mutable_live() = Figures(2, 2, 1, 0, 0.05, 1, 1, 0, 0, 0, 0);
  an = a.add_nodes();
  an->set_node_id("n2");
  *an->mutable_live() = Figures(1, 1, 1, 0, 0.15, 0, 1, 0, 0, 0, 0);

  v1::GetLiveQualityResponse b;
  b.set_window_ms(3600000);
  b.set_truncated(true);
  b.set_replicas(1);
  b.add_replica_ids("r1");
  *b.mutable_overall() = Figures(30, 12, 6, 0, 0.30, 1.0, 0.25, 0.2, 0, 0, 0);
  auto* bv = b.add_versions();
  bv->set_version(4);
  *bv->mutable_live() = Figures(20, 10, 4, 0, 0.4, 1, 0.2, 0.2, 0, 0, 0);
  bv = b.add_versions();
  bv->set_version(2);
  *bv->mutable_live() = Figures(10, 2, 2, 0, 0.1, 1, 0.5, 0.1, 0, 0, 0);
  auto* bn = b.add_nodes();
  bn->set_node_id("n1");
  *bn->mutable_live() = Figures(3, 3, 3, 0, 0.45, 1, 0, 0, 0, 0, 0);
  bn = b.add_nodes();
  bn->set_node_id("n3");
  *bn->mutable_live() = Figures(1, 1, 1, 0, 0.20, 1, 0, 0, 0, 0, 0);

  const v1::GetLiveQualityResponse m = server::MergeLiveQuality({a, b}, 2);
  EXPECT_EQ(m.window_ms(), 3600000);
  EXPECT_TRUE(m.truncated());
  EXPECT_TRUE(m.decision_log_enabled());
  EXPECT_EQ(m.replicas(), 2u);
  ASSERT_EQ(m.replica_ids_size(), 2);
  EXPECT_EQ(m.replica_ids(0), "r1");
  EXPECT_EQ(m.replica_ids(1), "r2");
  EXPECT_EQ(m.overall().decisions(), 40u);
  EXPECT_DOUBLE_EQ(m.overall().mape(), 0.25);

  // Newest first; version 2 from both, with a's held-out figures.
  ASSERT_EQ(m.versions_size(), 3);
  EXPECT_EQ(m.versions(0).version(), 4u);
  EXPECT_EQ(m.versions(1).version(), 3u);
  EXPECT_EQ(m.versions(2).version(), 2u);
  EXPECT_EQ(m.versions(2).live().decisions(), 14u);
  EXPECT_EQ(m.versions(2).live().joined_reports(), 4u);
  EXPECT_DOUBLE_EQ(m.versions(2).live().mape(), 0.1);                    // only b's part is scored
  EXPECT_DOUBLE_EQ(m.versions(2).live().exploration_share(), 2.0 / 14);  // (4 x 0.25 + 10 x 0.1) / 14
  EXPECT_DOUBLE_EQ(m.versions(2).holdout().holdout_mape(), 0.07);
  EXPECT_FALSE(m.versions(0).has_holdout());

  // n1 from both: mape (1 x 0.05 + 3 x 0.45) / 4 = 0.35, first; then n3 (0.20); n2 (0.15) is cut.
  ASSERT_EQ(m.nodes_size(), 2);
  EXPECT_EQ(m.nodes(0).node_id(), "n1");
  EXPECT_DOUBLE_EQ(m.nodes(0).live().mape(), 0.35);
  EXPECT_EQ(m.nodes(0).live().joined_reports(), 5u);
  EXPECT_EQ(m.nodes(1).node_id(), "n3");
}

// Ground truth of the runs reported: "s-a" 100 ms, "s-b" 200 ms.
double LatencyMs(const std::string& strategy) { return strategy == "s-a" ? 100 : 200; }

class ClusterQualityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cluster::Coordination::Available()) GTEST_SKIP() << "built without the NATS C client";
    if (NatsServer::Binary().empty()) GTEST_SKIP() << "nats-server is not installed";
    root_ = FreshDir("cluster-quality");
    nats_ = std::make_unique<NatsServer>(root_);
    ASSERT_TRUE(nats_->Start()) << "nats-server did not start; see " << root_ << "/nats-server.log";
  }

  void TearDown() override {
    for (auto& r : replicas_) {
      if (r != nullptr) r->Shutdown();
    }
    replicas_.clear();
    nats_.reset();  // killed and reaped before its folder goes
    if (!root_.empty() && !HasFailure()) std::filesystem::remove_all(root_);
  }

  server::Server* StartReplica(const std::string& name) {
    server::ServerOptions o = TestOptions(root_ + "/" + name);
    o.cluster.nats.servers = {nats_->url()};
    o.cluster.nats.publish_timeout = absl::Seconds(3);
    o.cluster.replica_id = name;
    o.shutdown_grace = absl::Seconds(1);
    replicas_.push_back(StartReplicaRetrying(o));
    return replicas_.back().get();
  }

  static void Register(server::Server& s, const std::string& id) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = MakeStrategy(id);
    v1::RegisterStrategyResponse resp;
    const grpc::Status st = c.selector->RegisterStrategy(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  // A decision served by `s` and the report of a run of its first place (run id `run_id`).
  static bool Decide(server::Server& s, const std::string& run_id, std::vector<v1::RunReport>* reports) {
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(16);
    req.set_node_id("node-1");
    v1::SelectAcceleratorResponse resp;
    if (!s.core().Select(req, &resp).ok() || resp.recommendations_size() < 2 || resp.decision_id().empty()) {
      return false;
    }
    const std::string strategy = resp.recommendations(0).strategy().id();
    v1::RunReport r = MakeReport(run_id, strategy, 16, LatencyMs(strategy), "node-1");
    r.set_decision_id(resp.decision_id());
    reports->push_back(r);
    return true;
  }

  static void Report(server::Server& s, const std::vector<v1::RunReport>& reports) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    for (const v1::RunAck& ack : ReportAll(*c.selector, reports, &ctx)) {
      ASSERT_EQ(ack.result(), v1::RunAck::RESULT_DURABLE) << ack.run_id() << " " << ack.reason();
    }
  }

  static v1::GetLiveQualityResponse Quality(server::Server& s) {
    v1::GetLiveQualityRequest req;
    v1::GetLiveQualityResponse resp;
    const absl::Status st = s.core().GetLiveQuality(req, &resp);
    EXPECT_TRUE(st.ok()) << st;
    return resp;
  }

  std::string root_;
  std::unique_ptr<NatsServer> nats_;
  std::vector<std::unique_ptr<server::Server>> replicas_;
};

TEST_F(ClusterQualityTest, AnyReplicaAnswersForTheDecisionsOfAll) {
  server::Server* a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  server::Server* b = StartReplica("b");
  ASSERT_NE(b, nullptr);
  Register(*a, "s-a");
  Register(*a, "s-b");
  std::vector<v1::RunReport> from_a, from_b;
  constexpr int kOnA = 3, kOnB = 2;
  for (int i = 0; i < kOnA; ++i) ASSERT_TRUE(Decide(*a, absl::StrCat("ra-", i), &from_a));
  // b decides between both once the catalogue reached it (a select before would log a decision of its own).
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::ListStrategiesResponse list;
        return b->core().ListStrategies(v1::ListStrategiesRequest(), &list).ok() && list.strategies_size() == 2;
      },
      absl::Seconds(20)));
  for (int i = 0; i < kOnB; ++i) ASSERT_TRUE(Decide(*b, absl::StrCat("rb-", i), &from_b));
  // Each replica's runs reported through the other: the runs reach both, each joins on the replica that decided.
  Report(*b, from_a);
  Report(*a, from_b);

  constexpr uint64_t kTotal = kOnA + kOnB;
  v1::GetLiveQualityResponse q;
  ASSERT_TRUE(WaitFor(
      [&] {
        q = Quality(*a);
        return q.overall().decisions() == kTotal && q.overall().joined_reports() == kTotal && q.replicas() == 2;
      },
      absl::Seconds(60)))
      << q.DebugString();
  EXPECT_TRUE(q.decision_log_enabled());
  ASSERT_EQ(q.replica_ids_size(), 2);
  EXPECT_EQ(q.replica_ids(0), "a");
  EXPECT_EQ(q.replica_ids(1), "b");
  EXPECT_DOUBLE_EQ(q.overall().follow_rate(), 1.0);  // every run ran its decision's first place
  uint64_t by_version = 0;
  for (const auto& v : q.versions()) by_version += v.live().decisions();
  EXPECT_EQ(by_version, kTotal);

  // The other replica answers the same.
  const v1::GetLiveQualityResponse from_b_side = Quality(*b);
  EXPECT_EQ(from_b_side.overall().decisions(), kTotal);
  EXPECT_EQ(from_b_side.overall().joined_reports(), kTotal);
  EXPECT_EQ(from_b_side.replicas(), 2u);

  // A replica gone: the answer is partial, and says so.
  replicas_[1]->Shutdown();
  const v1::GetLiveQualityResponse partial = Quality(*a);
  EXPECT_EQ(partial.replicas(), 1u);
  EXPECT_EQ(partial.overall().decisions(), uint64_t{kOnA});
  EXPECT_EQ(partial.overall().joined_reports(), uint64_t{kOnA});
}

TEST_F(ClusterQualityTest, InvalidRequestsAreRefusedBeforeAsking) {
  server::Server* a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  v1::GetLiveQualityRequest req;
  req.set_top_nodes(1001);
  v1::GetLiveQualityResponse resp;
  EXPECT_EQ(a->core().GetLiveQuality(req, &resp).code(), absl::StatusCode::kInvalidArgument);
  req.set_top_nodes(0);
  req.set_window_ms(-1);
  EXPECT_EQ(a->core().GetLiveQuality(req, &resp).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace accelsel::testing
