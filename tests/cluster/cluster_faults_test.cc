// `make cluster-test`: three NATS servers clustered on 127.0.0.1 and three accelsel replicas as processes, each with
// its own data folder; reports and selects through the balancing client (one target naming all three replicas)
// while one NATS server, then one replica, then the trainer are killed with SIGKILL. Afterwards every acknowledged
// run is on every replica, the replicas agree on the run count and the serving version, a new version was trained
// after the trainer died, and every select was answered (by a replica, or by the client's fallback).
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "cluster/coordination.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/cluster/nats_server.h"
#include "tests/server/test_server.h"
#include "tests/test_util/http.h"

namespace accelsel::testing {
namespace {

constexpr int kReplicas = 3;

struct Replica {
  std::string id;
  std::string dir;
  int port = 0;
  int metrics_port = 0;
  Child process;
};

class ClusterFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cluster::Coordination::Available()) GTEST_SKIP() << "built without the NATS C client";
    if (NatsServer::Binary().empty()) GTEST_SKIP() << "nats-server is not installed";
    root_ = FreshDir("cluster-faults");
    int client_ports[kReplicas];
    int route_ports[kReplicas];
    for (int i = 0; i < kReplicas; ++i) {
      client_ports[i] = FreePort();
      route_ports[i] = FreePort();
    }
    for (int i = 0; i < kReplicas; ++i) {
      std::vector<std::string> routes;
      for (int j = 0; j < kReplicas; ++j) {
        if (j != i) routes.push_back(absl::StrCat("nats://127.0.0.1:", route_ports[j]));
      }
      const std::string dir = absl::StrCat(root_, "/nats-", i);
      std::filesystem::create_directories(dir);
      nats_.push_back(std::make_unique<NatsServer>(
          dir,
          std::vector<std::string>{"-n", absl::StrCat("nats-", i), "--cluster_name", "accelsel", "--cluster",
                                   absl::StrCat("nats://127.0.0.1:", route_ports[i]), "--routes",
                                   absl::StrJoin(routes, ",")},
          client_ports[i]));
    }
    for (auto& n : nats_) ASSERT_TRUE(n->Start()) << "nats-server did not start; see " << root_;
    for (int i = 0; i < kReplicas; ++i) {
      auto r = std::make_unique<Replica>();
      r->id = absl::StrCat("r", i);
      r->dir = absl::StrCat(root_, "/", r->id);
      r->port = FreePort();
      r->metrics_port = FreePort();
      std::filesystem::create_directories(r->dir);
      replicas_.push_back(std::move(r));
    }
  }

  void TearDown() override {
    for (auto& r : replicas_) r->process.Kill();
    for (auto& n : nats_) n->Kill();
    if (!root_.empty() && !HasFailure()) std::filesystem::remove_all(root_);
  }

  std::string NatsUrls() const {
    std::vector<std::string> urls;
    for (const auto& n : nats_) urls.push_back(n->url());
    return absl::StrJoin(urls, ",");
  }

  // Starts replica i as a process and waits until its health check says SERVING. A start that fails (JetStream
  // still electing its leaders right after the servers came up, or slow to answer on a loaded machine) exits and is
  // retried until the deadline. A start that neither serves nor exits is a defect of its own: after a minute its
  // threads are written out for the reader; after three minutes (more than every bounded NATS call of a failing
  // start, the settings' 30 s wait and the bounded closes added up) it fails the test and the replica is started
  // again, so that the rest of the test still runs.
  bool StartReplica(int i) {
    Replica& r = *replicas_[i];
    const std::vector<std::string> args = {std::string(ACCELSEL_TEST_BIN_DIR) + "/accelsel-server",
                                           absl::StrCat("--listen=127.0.0.1:", r.port),
                                           absl::StrCat("--metrics_listen=127.0.0.1:", r.metrics_port),
                                           "--data_dir=" + r.dir + "/data",
                                           "--nats=" + NatsUrls(),
                                           "--nats_stream_replicas=3",
                                           "--nats_trainer_lease=2s",
                                           "--replica_id=" + r.id,
                                           "--seed_csv=",
                                           "--trainer=true",
                                           "--trainer_nice=0",
                                           "--retrain_interval=3s",
                                           "--shutdown_grace=1s",
                                           "--log_level=info"};
    const absl::Time deadline = absl::Now() + absl::Minutes(4);
    const auto settled = [&] { return !r.process.Running() || Serving(r.port); };
    for (int attempt = 1; absl::Now() < deadline; ++attempt) {
      if (!r.process.Running() && !r.process.Spawn(args, r.dir + "/server.log")) return false;
      bool done = WaitFor(settled, absl::Minutes(1));
      if (!done) {
        const std::string threads = DumpThreads(r.process.pid(), absl::StrCat(r.dir, "/slow-start-", attempt));
        done = WaitFor(settled, absl::Minutes(2));
        if (!done) {
          ADD_FAILURE() << "replica " << i << " neither served nor exited within 3 minutes (attempt " << attempt
                        << "); its threads after a minute: " << threads;
          r.process.Kill();
        }
      }
      if (r.process.Running()) return true;  // serving
    }
    return false;
  }

  // The stacks of every thread of a process, written by gdb to path.txt (when gdb is installed and may attach); returns
  // the path.
  static std::string DumpThreads(pid_t pid, const std::string& path) {
    if (access("/usr/bin/gdb", X_OK) != 0) return "(gdb is not installed)";
    Child gdb;
    if (!gdb.Spawn({"/usr/bin/gdb", "-p", absl::StrCat(pid), "-batch", "-ex", "thread apply all bt"}, path + ".txt")) {
      return "(gdb did not start)";
    }
    if (!WaitFor([&] { return !gdb.Running(); }, absl::Seconds(60))) gdb.Kill();
    return path + ".txt";
  }

  static bool Serving(int port) {
    Connection c = Connect(port);
    auto stub = grpc::health::v1::Health::NewStub(c.channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 2);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return stub->Check(&ctx, req, &resp).ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }

  bool Trainer(int i) {
    // The sample line, not the HELP line that names the series too.
    return HttpGet(replicas_[i]->metrics_port, "/metrics", absl::Seconds(5)).find("\naccelsel_cluster_trainer 1") !=
           std::string::npos;
  }

  static bool ModelInfo(int port, v1::GetModelInfoResponse* out) {
    Connection c = Connect(port);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 5);
    return c.selector->GetModelInfo(&ctx, v1::GetModelInfoRequest(), out).ok();
  }

  std::string Targets() const {
    std::vector<std::string> t;
    for (const auto& r : replicas_) t.push_back(absl::StrCat("127.0.0.1:", r->port));
    return absl::StrJoin(t, ",");
  }

  std::string root_;
  std::vector<std::unique_ptr<NatsServer>> nats_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(ClusterFaultsTest, NothingAcknowledgedIsLostAndTheReplicasAgree) {
  for (int i = 0; i < kReplicas; ++i) ASSERT_TRUE(StartReplica(i)) << "replica " << i << "; see " << root_;
  {
    // On one replica: the catalogue reaches the others through the settings bucket.
    Connection c = Connect(replicas_[0]->port);
    for (const char* id : {"small", "large"}) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      v1::RegisterStrategyRequest req;
      *req.mutable_strategy() = MakeStrategy(id);
      v1::RegisterStrategyResponse resp;
      ASSERT_TRUE(c.selector->RegisterStrategy(&ctx, req, &resp).ok());
    }
  }

  client::ClientOptions options;
  options.target = Targets();
  options.deadline_ms = 3000;
  options.initial_backoff_ms = 50;
  options.max_backoff_ms = 500;
  options.fallback_strategy = "small";
  auto selector = client::Client::Create(options);
  ASSERT_TRUE(selector.ok()) << selector.status();
  auto channel = client::MakeChannel(options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  client::TelemetrySender sender(*channel, options, client::TelemetrySenderOptions{});

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> selects{0}, fallbacks{0}, unanswered{0}, sent{0};
  std::thread select_load([&] {
    for (uint32_t i = 0; !stop.load(); ++i) {
      v1::SelectAcceleratorRequest req;
      *req.mutable_context() = MakeContext(1u << (i % 6));
      const absl::StatusOr<client::Selection> s = (*selector)->Select(req);
      ++selects;
      if (!s.ok() || s->response.recommendations_size() == 0) {
        ++unanswered;
      } else if (s->fallback()) {
        ++fallbacks;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  std::thread report_load([&] {
    for (uint32_t i = 0; !stop.load(); ++i) {
      const uint32_t batch = 1u << (i % 6);
      const std::string strategy = i % 2 == 0 ? "small" : "large";
      const double ms = strategy == "small" ? 20.0 * batch : 160.0 + 10.0 * batch;
      if (sender.Send(MakeReport(absl::StrCat("load-", i), strategy, batch, ms)).ok()) ++sent;
      absl::SleepFor(absl::Milliseconds(4));
    }
  });

  // An assertion below returns early: the load stops and its threads are joined first.
  struct Joiner {
    std::atomic<bool>* stop;
    std::thread* threads[2];
    ~Joiner() {
      stop->store(true);
      for (std::thread* t : threads) {
        if (t->joinable()) t->join();
      }
    }
  } joiner{&stop, {&select_load, &report_load}};

  absl::SleepFor(absl::Seconds(4));
  nats_[1]->Kill();  // a 3-way replicated stream keeps its quorum with two servers
  absl::SleepFor(absl::Seconds(4));
  int trainer = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < kReplicas; ++i) {
          if (Trainer(i)) trainer = i;
        }
        return trainer >= 0;
      },
      absl::Seconds(20)));
  const int other = (trainer + 1) % kReplicas;
  const int survivor = (trainer + 2) % kReplicas;
  replicas_[other]->process.Kill();
  absl::SleepFor(absl::Seconds(4));
  uint64_t newest_before = 0;
  {
    v1::GetModelInfoResponse info;
    ASSERT_TRUE(ModelInfo(replicas_[trainer]->port, &info));
    for (const auto& h : info.history()) newest_before = std::max(newest_before, h.version());
  }
  replicas_[trainer]->process.Kill();
  const absl::Time trainer_killed = absl::Now();
  // The survivor takes the lease within about two lease periods, and trains on its timer.
  ASSERT_TRUE(WaitFor([&] { return Trainer(survivor); }, absl::Seconds(15)));
  const absl::Duration takeover = absl::Now() - trainer_killed;
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::GetModelInfoResponse info;
        return ModelInfo(replicas_[survivor]->port, &info) && info.history_size() > 0 &&
               info.history(0).version() > newest_before;
      },
      absl::Seconds(90)))
      << "no version trained after the trainer was killed (newest before: " << newest_before << ")";
  // The killed replicas come back on their folders and catch up from the stream.
  ASSERT_TRUE(StartReplica(other));
  ASSERT_TRUE(StartReplica(trainer));
  absl::SleepFor(absl::Seconds(2));
  stop = true;
  select_load.join();
  report_load.join();
  const absl::Status flushed = sender.Flush(absl::Seconds(60));
  ASSERT_TRUE(flushed.ok()) << flushed;
  const uint64_t acknowledged = sent.load();

  // Every replica holds every acknowledged run (ids are unique and nothing else writes), and serves one version.
  std::vector<v1::GetModelInfoResponse> infos(kReplicas);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < kReplicas; ++i) {
          if (!ModelInfo(replicas_[i]->port, &infos[i])) return false;
        }
        for (int i = 0; i < kReplicas; ++i) {
          if (infos[i].runs_stored() != acknowledged || infos[i].serving_version() != infos[0].serving_version()) {
            return false;
          }
        }
        return true;
      },
      absl::Seconds(60)))
      << "runs " << infos[0].runs_stored() << "/" << infos[1].runs_stored() << "/" << infos[2].runs_stored() << " of "
      << acknowledged << "; versions " << infos[0].serving_version() << "/" << infos[1].serving_version() << "/"
      << infos[2].serving_version();
  EXPECT_GT(infos[0].serving_version(), 0u);
  EXPECT_EQ(unanswered.load(), 0u) << "of " << selects.load() << " selects";
  std::cout << "cluster-test: " << acknowledged << " runs acknowledged and on all " << kReplicas << " replicas; "
            << selects.load() << " selects, " << fallbacks.load() << " answered by the client's fallback, "
            << unanswered.load() << " unanswered; trainer taken over in " << absl::FormatDuration(takeover)
            << "; serving version " << infos[0].serving_version() << " (newest before the trainer died "
            << newest_before << ")\n";
}

}  // namespace
}  // namespace accelsel::testing
