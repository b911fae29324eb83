// Cluster mode's decision stream, end to end on a nats-server with JetStream (a child process) and two accelsel
// replicas in this process: decisions served by either replica, reports through either, every report joined with
// its decision on both replicas, and GetLiveQuality on either counting them all, also with the other one gone.
#include "server/cluster_decisions.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "server/service_core.h"
#include "tests/cluster/nats_server.h"
#include "tests/cluster/replica.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

// Ground truth of the runs reported: "s-a" 100 ms, "s-b" 200 ms.
double LatencyMs(const std::string& strategy) { return strategy == "s-a" ? 100 : 200; }

class ClusterDecisionsTest : public ClusterTest {
 protected:
  ClusterDecisionsTest() : ClusterTest("cluster-decisions") {}

  server::ServerOptions Options(const std::string& name) {
    server::ServerOptions o = ReplicaOptions(name);
    o.cluster.nats.publish_timeout = absl::Seconds(3);
    return o;
  }
  server::Server* StartReplica(const server::ServerOptions& o) {
    replicas_.push_back(StartReplicaRetrying(o));
    return replicas_.back().get();
  }
  server::Server* StartReplica(const std::string& name) { return StartReplica(Options(name)); }

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

  static v1::GetLiveQualityResponse Quality(server::Server& s) {
    v1::GetLiveQualityRequest req;
    v1::GetLiveQualityResponse resp;
    const absl::Status st = s.core().GetLiveQuality(req, &resp);
    EXPECT_TRUE(st.ok()) << st;
    return resp;
  }
};

TEST_F(ClusterDecisionsTest, AnyReplicaAnswersForTheDecisionsOfAll) {
  server::Server* a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  server::Server* b = StartReplica("b");
  ASSERT_NE(b, nullptr);
  RegisterStrategy(*a, "s-a");
  RegisterStrategy(*a, "s-b");
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
  // Each replica's runs reported through the other: the runs reach both, and so do the decisions.
  ReportDurable(*b, from_a);
  ReportDurable(*a, from_b);

  constexpr uint64_t kTotal = kOnA + kOnB;
  for (server::Server* s : {a, b}) {
    v1::GetLiveQualityResponse q;
    ASSERT_TRUE(WaitFor(
        [&] {
          q = Quality(*s);
          return q.overall().decisions() == kTotal && q.overall().joined_reports() == kTotal;
        },
        absl::Seconds(60)))
        << q.DebugString();
    EXPECT_TRUE(q.decision_log_enabled());
    EXPECT_EQ(q.replicas(), 2u);
    ASSERT_EQ(q.replica_ids_size(), 2);
    EXPECT_EQ(q.replica_ids(0), "a");
    EXPECT_EQ(q.replica_ids(1), "b");
    EXPECT_DOUBLE_EQ(q.overall().follow_rate(), 1.0);  // every run ran its decision's first place
    uint64_t by_version = 0;
    for (const auto& v : q.versions()) by_version += v.live().decisions();
    EXPECT_EQ(by_version, kTotal);
    // Every report joined its decision on this replica too, none counted unknown (waiting for a decision ends in
    // one or the other).
    const server::DecisionLog& log = *s->core().decision_log();
    // The waiting count is published after the join is counted: both are waited for.
    ASSERT_TRUE(WaitFor([&] { return log.joins(server::JoinResult::kJoined) == kTotal && log.waiting_joins() == 0; },
                        absl::Seconds(60)))
        << log.joins(server::JoinResult::kJoined);
    EXPECT_EQ(log.joins(server::JoinResult::kUnknown), 0u);
    EXPECT_EQ(log.waiting_joins(), 0u);
  }

  // A replica gone: the other still holds its decisions and their runs.
  replicas_[1]->Shutdown();
  const v1::GetLiveQualityResponse after = Quality(*a);
  EXPECT_EQ(after.overall().decisions(), kTotal);
  EXPECT_EQ(after.overall().joined_reports(), kTotal);
  EXPECT_EQ(after.replicas(), 2u);
}

TEST_F(ClusterDecisionsTest, AReplicaWhoseDeliveryDropsDecisionsStartsOverAndMissesNone) {
  constexpr int kN = 1500;
  server::Server* a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  RegisterStrategy(*a, "s-a");
  RegisterStrategy(*a, "s-b");
  std::vector<v1::RunReport> unused;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(Decide(*a, absl::StrCat("r-", i), &unused));
  // B takes decisions slowly (a small log queue, a slow log writer) with a small client buffer: the library drops
  // what does not fit while B's applier waits for room in the log. At most 64 decisions per about 20 ms (the writer
  // lingers 10 ms for a batch, then this hook), so that the server delivers faster on any host; with a 2 ms hook a busy
  // host's delivery once kept up and nothing dropped.
  server::ServerOptions slow = Options("b");
  slow.cluster.nats.pending_messages = 64;
  slow.cluster.max_batch = 32;
  slow.decision_log.queue_capacity = 64;
  slow.decision_log.on_take = [] { absl::SleepFor(absl::Milliseconds(10)); };
  server::Server* b = StartReplica(slow);
  ASSERT_NE(b, nullptr);
  v1::GetLiveQualityResponse q;
  ASSERT_TRUE(WaitFor(
      [&] {
        q = Quality(*b);
        return q.overall().decisions() == uint64_t{kN};
      },
      absl::Seconds(120)))
      << q.overall().decisions();
  EXPECT_GT(b->core().metrics()->EnableCluster().decision_redeliveries->Value(), 0)
      << "the delivery never dropped a decision: the test did not test";
}

TEST_F(ClusterDecisionsTest, InvalidRequestsAreRefused) {
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
