// Cluster mode for the operator's state, end to end on real components: a nats-server with JetStream (a child
// process), accelsel replicas in this process with their own stores (trainer off). A strategy registered, retired or
// restored and a node quarantined or released on one replica take effect on the others, and on a replica started
// later with an empty store.
#include "server/cluster_settings.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
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

constexpr absl::Duration kBound = absl::Seconds(10);  // replication takes milliseconds; this only bounds a failure

class ClusterSettingsTest : public ClusterTest {
 protected:
  ClusterSettingsTest() : ClusterTest("cluster-settings") {}

  server::Server* StartReplica(const std::string& name) {
    std::unique_ptr<server::Server> s = StartReplicaRetrying(ReplicaOptions(name));
    if (s == nullptr) return nullptr;
    replicas_.push_back(std::move(s));
    return replicas_.back().get();
  }

  static grpc::Status Register(server::Server& s, const v1::Strategy& strategy, bool* created = nullptr) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = strategy;
    v1::RegisterStrategyResponse resp;
    grpc::Status st = c.selector->RegisterStrategy(&ctx, req, &resp);
    if (created != nullptr) *created = resp.created();
    return st;
  }

  static grpc::Status SetRetired(server::Server& s, const std::string& id, bool retired) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (retired) {
      v1::RetireStrategyRequest req;
      req.set_id(id);
      v1::RetireStrategyResponse resp;
      return c.selector->RetireStrategy(&ctx, req, &resp);
    }
    v1::UnretireStrategyRequest req;
    req.set_id(id);
    v1::UnretireStrategyResponse resp;
    return c.selector->UnretireStrategy(&ctx, req, &resp);
  }

  // id -> retired, retired ones included.
  static std::map<std::string, bool> Catalogue(server::Server& s) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::ListStrategiesRequest req;
    req.set_include_retired(true);
    v1::ListStrategiesResponse resp;
    const grpc::Status st = c.selector->ListStrategies(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::map<std::string, bool> out;
    for (const v1::Strategy& x : resp.strategies()) out[x.id()] = x.retired();
    return out;
  }

  // node_id empty: only lists.
  static grpc::Status Quarantine(server::Server& s, const std::string& node_id, bool release,
                                 std::vector<std::string>* listed = nullptr) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::QuarantineNodeRequest req;
    req.set_node_id(node_id);
    req.set_release(release);
    v1::QuarantineNodeResponse resp;
    grpc::Status st = c.admin->QuarantineNode(&ctx, req, &resp);
    if (listed != nullptr) listed->assign(resp.quarantined().begin(), resp.quarantined().end());
    return st;
  }
  static std::vector<std::string> Quarantined(server::Server& s) {
    std::vector<std::string> listed;
    const grpc::Status st = Quarantine(s, "", false, &listed);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return listed;
  }

  static std::vector<v1::RunAck> Report(server::Server& s, const std::vector<v1::RunReport>& reports) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    return ReportAll(*c.selector, reports, &ctx);
  }
};

TEST(ClusterSettingsKeyTest, KeysAreHexOfTheId) {
  EXPECT_EQ(server::ClusterSettings::StrategyKey("vllm/a b"), "strategy.766c6c6d2f612062");
  EXPECT_EQ(server::ClusterSettings::QuarantineKey("n-1"), "quarantine.6e2d31");
}

TEST_F(ClusterSettingsTest, WatchDeliversCurrentValuesThenTheMarkerThenChanges) {
  cluster::RunStreamOptions connection;
  connection.servers = {nats_->url()};
  auto writer = cluster::Coordination::Open(connection, {});
  auto reader = cluster::Coordination::Open(connection, {});
  ASSERT_TRUE(writer.ok() && reader.ok()) << writer.status() << " " << reader.status();
  ASSERT_TRUE((*writer)->PutSetting("a.1", "old").ok());
  ASSERT_TRUE((*writer)->PutSetting("a.1", "first").ok());
  ASSERT_TRUE((*writer)->PutSetting("b.2", "second").ok());
  EXPECT_EQ((*writer)->PutSetting("bad key!", "x").code(), absl::StatusCode::kInvalidArgument);

  absl::Mutex mu;
  std::vector<std::string> events;
  absl::Notification initial;
  ASSERT_TRUE((*reader)
                  ->WatchSettings(
                      [&](std::string_view key, std::string_view value, bool deleted) {
                        absl::MutexLock lock(&mu);
                        events.push_back(
                            absl::StrCat(std::string(key), "=", std::string(value), deleted ? " (deleted)" : ""));
                      },
                      [&] {
                        {
                          absl::MutexLock lock(&mu);
                          events.push_back("--");
                        }
                        initial.Notify();
                      })
                  .ok());
  ASSERT_TRUE(initial.WaitForNotificationWithTimeout(kBound));
  EXPECT_EQ((*reader)->WatchSettings([](auto, auto, bool) {}, [] {}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*writer)->PutSetting("a.1", "third").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::MutexLock lock(&mu);
        return events.size() == 4;
      },
      kBound));
  (*reader)->StopWatchingSettings();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(events, (std::vector<std::string>{"a.1=first", "b.2=second", "--", "a.1=third"}));
}

TEST_F(ClusterSettingsTest, AWatchOfAnEmptyBucketEndsItsInitialValuesAtOnce) {
  cluster::RunStreamOptions connection;
  connection.servers = {nats_->url()};
  auto c = cluster::Coordination::Open(connection, {});
  ASSERT_TRUE(c.ok()) << c.status();
  absl::Notification initial;
  ASSERT_TRUE((*c)->WatchSettings([](auto, auto, bool) {}, [&] { initial.Notify(); }).ok());
  EXPECT_TRUE(initial.WaitForNotificationWithTimeout(kBound));
}

TEST_F(ClusterSettingsTest, OperatorCallsOnAnyReplicaTakeEffectOnAll) {
  server::Server* a = StartReplica("a");
  server::Server* b = StartReplica("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  // Registered on A: B lists it.
  bool created = false;
  grpc::Status st = Register(*a, MakeStrategy("s1"), &created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(created);
  ASSERT_TRUE(WaitFor([&] { return Catalogue(*b).count("s1") == 1; }, kBound)) << "B never listed s1";
  EXPECT_FALSE(Catalogue(*b).at("s1"));
  // The same definition again on B: nothing new; another definition under that id: refused there too.
  st = Register(*b, MakeStrategy("s1"), &created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(created);
  v1::Strategy other = MakeStrategy("s1");
  other.mutable_components(0)->set_value("something-else");
  EXPECT_EQ(Register(*b, other).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // Retired on B: A sees it retired.
  st = SetRetired(*b, "s1", true);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(WaitFor([&] { return Catalogue(*a)["s1"]; }, kBound)) << "A never saw s1 retired";
  EXPECT_EQ(a->core().metrics()->strategies().Value(), 1);
  // A report naming it is accepted on B (retired strategies keep their runs), and on A through the stream.
  std::vector<v1::RunAck> acks = Report(*b, {MakeReport("r1", "s1", 4, 100)});
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE) << acks[0].reason();
  ASSERT_TRUE(WaitFor([&] { return a->core().store()->RunCount() == 1; }, kBound));
  // Restored on A: B sees it active.
  st = SetRetired(*a, "s1", false);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(WaitFor([&] { return Catalogue(*b).count("s1") == 1 && !Catalogue(*b).at("s1"); }, kBound));

  // A definition attached to an (operator's) report on A: B knows the strategy before it gets the run.
  v1::RunReport inline_report = MakeReport("r2", "", 8, 120);
  inline_report.clear_strategy_id();
  *inline_report.mutable_strategy() = MakeStrategy("s2");
  acks = Report(*a, {inline_report});
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE) << acks[0].reason();
  ASSERT_TRUE(WaitFor([&] { return Catalogue(*b).count("s2") == 1; }, kBound)) << "B never listed s2";
  acks = Report(*b, {MakeReport("r3", "s2", 8, 121)});
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE) << acks[0].reason();

  // Quarantined on A: B lists it; released on B: A lists it no more.
  std::vector<std::string> listed;
  st = Quarantine(*a, "node-x", false, &listed);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(listed, std::vector<std::string>{"node-x"});
  ASSERT_TRUE(WaitFor([&] { return Quarantined(*b) == std::vector<std::string>{"node-x"}; }, kBound));
  st = Quarantine(*a, "node-y", false);
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Quarantine(*b, "node-x", true, &listed);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(WaitFor([&] { return Quarantined(*a) == std::vector<std::string>{"node-y"}; }, kBound))
      << "A lists " << ::testing::PrintToString(Quarantined(*a));
  ASSERT_TRUE(WaitFor([&] { return Quarantined(*b) == std::vector<std::string>{"node-y"}; }, kBound));

  // A replica started later with an empty store has the whole catalogue and quarantine list once it started.
  st = SetRetired(*b, "s2", true);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(WaitFor([&] { return Catalogue(*a)["s2"]; }, kBound));
  server::Server* c = StartReplica("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(Catalogue(*c), (std::map<std::string, bool>{{"s1", false}, {"s2", true}}));
  EXPECT_EQ(Quarantined(*c), std::vector<std::string>{"node-y"});
  // ... and the changes made after it.
  st = Quarantine(*c, "node-z", false);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(WaitFor([&] { return Quarantined(*a) == std::vector<std::string>{"node-y", "node-z"}; }, kBound));
}

// A store that joins the cluster (here: one used by a single-process server first) brings the strategies and the
// quarantined nodes the cluster lacks; where the cluster has an item, the cluster's value wins on the joining
// replica.
TEST_F(ClusterSettingsTest, AJoiningStoreBringsWhatTheClusterLacksAndTakesWhatItHas) {
  server::Server* a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(Register(*a, MakeStrategy("shared")).ok());
  {
    server::ServerOptions o = TestOptions(root_ + "/joining");  // no --nats: one process, its own store
    auto alone = server::Server::Start(o);
    ASSERT_TRUE(alone.ok()) << alone.status();
    ASSERT_TRUE(Register(**alone, MakeStrategy("own")).ok());
    ASSERT_TRUE(Register(**alone, MakeStrategy("shared")).ok());
    ASSERT_TRUE(SetRetired(**alone, "shared", true).ok());  // the cluster has it active
    ASSERT_TRUE(Quarantine(**alone, "node-own", false).ok());
    (*alone)->Shutdown();
  }
  server::Server* joining = StartReplica("joining");
  ASSERT_NE(joining, nullptr);
  // Brought: the replica already in the cluster lists the joining store's own strategy and quarantined node.
  ASSERT_TRUE(WaitFor([&] { return Catalogue(*a).count("own") == 1; }, kBound))
      << "A lists " << ::testing::PrintToString(Catalogue(*a));
  ASSERT_TRUE(WaitFor([&] { return Quarantined(*a) == std::vector<std::string>{"node-own"}; }, kBound));
  // Taken: the cluster's "shared" is active, on both.
  EXPECT_EQ(Catalogue(*joining), (std::map<std::string, bool>{{"own", false}, {"shared", false}}));
  EXPECT_EQ(Catalogue(*a), (std::map<std::string, bool>{{"own", false}, {"shared", false}}));
}

TEST_F(ClusterSettingsTest, WithoutNatsAChangeIsRefusedUnavailableAndWorksOnceItIsBack) {
  server::Server* a = StartReplica("a");
  server::Server* b = StartReplica("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  nats_->Kill();
  grpc::Status st = Register(*a, MakeStrategy("lonely"));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_NE(st.error_message().find("not replicated"), std::string::npos) << st.error_message();
  st = Quarantine(*a, "node-q", false);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  // Listing needs no NATS.
  EXPECT_EQ(Quarantined(*b), std::vector<std::string>{});
  // A report whose new strategy cannot be replicated is not acknowledged (neither stored nor rejected): the stream
  // ends UNAVAILABLE and the client resends it.
  {
    v1::RunReport report = MakeReport("r-inline", "", 8, 120);
    report.clear_strategy_id();
    *report.mutable_strategy() = MakeStrategy("inline-new");
    Connection c = Connect(a->port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto stream = c.selector->ReportRun(&ctx);
    EXPECT_TRUE(stream->Write(report));
    stream->WritesDone();
    v1::RunAck ack;
    EXPECT_FALSE(stream->Read(&ack)) << "acknowledged: " << ack.ShortDebugString();
    st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  }

  ASSERT_TRUE(nats_->Start());
  // The caller retries until NATS is back; the retry reaches B (its watch resumed on the restarted server).
  ASSERT_TRUE(WaitFor([&] { return Register(*a, MakeStrategy("lonely")).ok(); }, absl::Seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return Catalogue(*b).count("lonely") == 1; }, absl::Seconds(30)))
      << "B never listed the strategy registered after NATS came back";
  ASSERT_TRUE(WaitFor([&] { return Quarantine(*a, "node-q", false).ok(); }, absl::Seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return Quarantined(*b) == std::vector<std::string>{"node-q"}; }, absl::Seconds(30)));
}

// Runs `f` on its own thread and waits at most `bound` for it. A start or a stop that hangs must fail the test run
// with evidence rather than stall it: every thread's stack goes to `stacks` (where gdb is installed and may attach)
// and the process aborts.
void RunBounded(const std::function<void()>& f, absl::Duration bound, const std::string& what,
                const std::string& stacks) {
  absl::Notification done;
  std::thread t([&] {
    f();
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(bound)) {
    (void)std::system(
        absl::StrCat("gdb -p ", getpid(), " -batch -ex 'thread apply all bt' > ", stacks, " 2>&1").c_str());
    std::fprintf(stderr, "%s did not return within %s; stacks in %s\n", what.c_str(),
                 absl::FormatDuration(bound).c_str(), stacks.c_str());
    std::abort();
  }
  t.join();
}

// Replicas started the moment the nats-server accepts connections, several at once, start (StartReplicaRetrying
// retries a start that JetStream refuses) and never hang.
TEST(ClusterStartupTest, ReplicasStartedRightAfterTheNatsServerStart) {
  if (!cluster::Coordination::Available()) GTEST_SKIP() << "built without the NATS C client";
  if (NatsServer::Binary().empty()) GTEST_SKIP() << "nats-server is not installed";
  for (int i = 0; i < 3; ++i) {
    const std::string root = FreshDir("cluster-startup");
    NatsServer nats(root);
    ASSERT_TRUE(nats.Start()) << "nats-server did not start; see " << root << "/nats-server.log";
    std::vector<std::unique_ptr<server::Server>> replicas(2);
    RunBounded(
        [&] {
          std::vector<std::thread> starts;
          for (size_t r = 0; r < replicas.size(); ++r) {
            starts.emplace_back([&, r] {
              replicas[r] = StartReplicaRetrying(ClusterReplicaOptions(root, nats.url(), absl::StrCat("r", r)));
            });
          }
          for (std::thread& t : starts) t.join();
        },
        absl::Seconds(60), absl::StrCat("iteration ", i, ": starting the replicas"), root + "/stacks.txt");
    for (auto& s : replicas) {
      ASSERT_NE(s, nullptr) << "iteration " << i;
      s->Shutdown();
    }
    replicas.clear();
    nats.Kill();
    if (!HasFailure()) std::filesystem::remove_all(root);
  }
}

// A start whose initial values do not arrive in time (here: a timeout shorter than applying them takes) fails
// UNAVAILABLE and stops its watch at once, whatever the watch thread is doing then (inside kvWatcher_Next, or
// applying a value).
TEST_F(ClusterSettingsTest, AStartWhoseInitialValuesComeTooLateStopsPromptly) {
  {
    cluster::RunStreamOptions connection;
    connection.servers = {nats_->url()};
    auto c = cluster::Coordination::Open(connection, {});
    ASSERT_TRUE(c.ok()) << c.status();
    for (int k = 0; k < 20; ++k) {
      const v1::Strategy s = MakeStrategy(absl::StrCat("s", k));
      ASSERT_TRUE((*c)->PutSetting(server::ClusterSettings::StrategyKey(s.id()), s.SerializeAsString()).ok());
    }
  }
  server::ClusterOptions o;
  o.nats.servers = {nats_->url()};
  // The values often lie in the watch's queue before WatchSettings returns: a slow applier keeps the watch busy.
  server::ClusterSettings::Appliers appliers;
  appliers.strategy = [](const v1::Strategy&) { absl::SleepFor(absl::Milliseconds(1)); };
  int timed_out = 0;
  for (int i = 0; i < 20; ++i) {
    RunBounded(
        [&] {
          auto s = server::ClusterSettings::Start(o, appliers, absl::Microseconds(i * 500));
          if (!s.ok()) {
            EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
            ++timed_out;
          }
        },
        absl::Seconds(30), absl::StrCat("iteration ", i, ": a start and its stop"), root_ + "/stacks.txt");
  }
  EXPECT_GT(timed_out, 0) << "no start timed out: the path this test is about was not taken";
}

}  // namespace
}  // namespace accelsel::testing
