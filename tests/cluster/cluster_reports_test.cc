// Cluster mode for reports, end to end on real components: a nats-server with JetStream (a child process), two
// accelsel replicas in this process with their own stores, reports over gRPC to one replica only.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "cluster/run_stream.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/cluster_ingest.h"
#include "server/server.h"
#include "server/service_core.h"
#include "tests/cluster/nats_server.h"
#include "tests/cluster/replica.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

// Its replicas are the tests' own (replicas_ stays empty).
class ClusterReportsTest : public ClusterTest {
 protected:
  ClusterReportsTest() : ClusterTest("cluster") {}

  server::ServerOptions ReplicaOptions(const std::string& name) const {
    server::ServerOptions o = ClusterTest::ReplicaOptions(name);
    o.cluster.replica_id.clear();  // as these tests always ran: the default id (host name and process id)
    o.cluster.nats.publish_timeout = absl::Seconds(3);
    return o;
  }

  // A replica on its own data folder. JetStream may still be starting when the port accepts: retried, bounded.
  std::unique_ptr<server::Server> StartReplica(const std::string& name) { return StartReplica(ReplicaOptions(name)); }
  std::unique_ptr<server::Server> StartReplica(const server::ServerOptions& o) { return StartReplicaRetrying(o); }

  static std::vector<v1::RunReport> Reports(const std::string& prefix, int n) {
    std::vector<v1::RunReport> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(MakeReport(absl::StrCat(prefix, i), i % 2 == 0 ? "s-a" : "s-b", 16, 100 + i % 7));
    }
    return out;
  }

  // Reports on one stream; returns the number of reports acknowledged with `result` (ranged acks counted whole).
  static uint64_t Report(server::Server& s, const std::vector<v1::RunReport>& reports, v1::RunAck::Result result) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    uint64_t n = 0;
    for (const v1::RunAck& ack : ReportAll(*c.selector, reports, &ctx)) {
      EXPECT_EQ(ack.result(), result) << ack.run_id() << " " << ack.reason();
      if (ack.result() == result) n += std::max<uint32_t>(1, ack.count());
    }
    return n;
  }

  // Reports through the C++ client's TelemetrySender (which resends what a broken stream left unacknowledged) and
  // waits until all are acknowledged; returns its statistics.
  static client::TelemetrySenderStats Send(client::TelemetrySender& sender, const std::vector<v1::RunReport>& reports,
                                           absl::Duration bound) {
    for (const v1::RunReport& r : reports) EXPECT_TRUE(sender.Send(r).ok());
    const absl::Status flushed = sender.Flush(bound);
    EXPECT_TRUE(flushed.ok()) << flushed;
    return sender.stats();
  }

  static client::ClientOptions SenderOptions(int port) {
    client::ClientOptions o;
    o.target = absl::StrCat("127.0.0.1:", port);
    o.initial_backoff_ms = 50;
    o.max_backoff_ms = 500;
    return o;
  }

  static uint64_t Count(server::Server& s) { return s.core().store()->RunCount(); }

  // The health check's answer for the server ("") or the selector service; UNKNOWN when the call fails.
  static grpc::health::v1::HealthCheckResponse::ServingStatus Health(server::Server& s, const std::string& service) {
    Connection c = Connect(s.port());
    auto stub = grpc::health::v1::Health::NewStub(c.channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    if (!stub->Check(&ctx, req, &resp).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
    return resp.status();
  }
  static bool Serving(server::Server& s) {
    return Health(s, "") == grpc::health::v1::HealthCheckResponse::SERVING &&
           Health(s, "accelsel.v1.AcceleratorSelector") == grpc::health::v1::HealthCheckResponse::SERVING;
  }
  static bool NotServing(server::Server& s) {
    return Health(s, "") == grpc::health::v1::HealthCheckResponse::NOT_SERVING &&
           Health(s, "accelsel.v1.AcceleratorSelector") == grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  }

  static void ExpectStored(server::Server& s, const std::vector<v1::RunReport>& reports) {
    for (const v1::RunReport& r : reports) {
      auto got = s.core().store()->GetRun(r.run_id());
      ASSERT_TRUE(got.ok()) << r.run_id() << ": " << got.status();
      EXPECT_EQ(got->metrics().e2e_latency_ms(), r.metrics().e2e_latency_ms());
    }
  }

  static absl::Status Select(server::Server& s) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(16);
    v1::SelectAcceleratorResponse resp;
    const grpc::Status st = c.selector->SelectAccelerator(&ctx, req, &resp);
    if (!st.ok()) return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
    if (resp.recommendations_size() == 0) return absl::NotFoundError("no recommendation");
    return absl::OkStatus();
  }
};

TEST_F(ClusterReportsTest, ReplicasConvergeDeduplicateCatchUpAndRefuseWithoutTheStream) {
  constexpr int kN = 300;
  constexpr int kM = 150;
  const absl::Duration kBound = absl::Seconds(20);
  std::unique_ptr<server::Server> a = StartReplica("a");
  std::unique_ptr<server::Server> b = StartReplica("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Catalogue replication is not built yet: each replica gets the strategies from the operator.
  for (server::Server* s : {a.get(), b.get()}) {
    RegisterStrategy(*s, "s-a");
    RegisterStrategy(*s, "s-b");
  }

  // N reports to A only, through the C++ client: all acknowledged durable, and both replicas apply all of them.
  const std::vector<v1::RunReport> first = Reports("run-", kN);
  {
    client::TelemetrySender sender(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", a->port()), grpc::InsecureChannelCredentials()),
        SenderOptions(a->port()), client::TelemetrySenderOptions{});
    const client::TelemetrySenderStats stats = Send(sender, first, kBound);
    EXPECT_EQ(stats.durable, uint64_t{kN});
    EXPECT_EQ(stats.duplicate + stats.rejected, 0u);
  }
  ASSERT_TRUE(WaitFor([&] { return Count(*a) == kN && Count(*b) == kN; }, kBound))
      << "a=" << Count(*a) << " b=" << Count(*b);
  ExpectStored(*a, first);
  ExpectStored(*b, first);
  // The statistics of B follow what it applied: it answers from observed runs it never received from a client.
  EXPECT_TRUE(Select(*b).ok());
  const uint64_t position = a->core().cluster()->applied_sequence();
  EXPECT_GE(position, uint64_t{kN});
  EXPECT_TRUE(WaitFor([&] { return b->core().cluster()->applied_sequence() == position; }, kBound));

  // The same reports again: the stream knows their ids, nothing is stored twice.
  EXPECT_EQ(Report(*a, first, v1::RunAck::RESULT_DUPLICATE), uint64_t{kN});
  absl::SleepFor(absl::Milliseconds(300));  // room for a wrong apply to show; the counts must not move
  EXPECT_EQ(Count(*a), uint64_t{kN});
  EXPECT_EQ(Count(*b), uint64_t{kN});

  // B down while A takes M more; B restarted on its folder catches up from its stored position.
  b.reset();
  const std::vector<v1::RunReport> second = Reports("more-", kM);
  EXPECT_EQ(Report(*a, second, v1::RunAck::RESULT_DURABLE), uint64_t{kM});
  ASSERT_TRUE(WaitFor([&] { return Count(*a) == kN + kM; }, kBound)) << "a=" << Count(*a);
  b = StartReplica("b");
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Count(*b) == kN + kM; }, kBound)) << "b=" << Count(*b);
  ExpectStored(*b, first);
  ExpectStored(*b, second);
  EXPECT_EQ(b->core().cluster()->applied_sequence(), a->core().cluster()->applied_sequence());

  // Without the stream nothing is acknowledged: the stream ends UNAVAILABLE, within the publish timeout and then
  // some; selects keep answering from each replica's own state.
  nats_->Kill();
  const absl::Time start = absl::Now();
  {
    Connection c = Connect(a->port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 30);
    auto stream = c.selector->ReportRun(&ctx);
    // The server ends the stream at the first report it cannot get into the stream: later writes may fail.
    for (const v1::RunReport& r : Reports("lost-", 20)) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
    v1::RunAck ack;
    uint64_t acked = 0;
    while (stream->Read(&ack)) {
      if (ack.result() == v1::RunAck::RESULT_DURABLE || ack.result() == v1::RunAck::RESULT_DUPLICATE) ++acked;
    }
    const grpc::Status st = stream->Finish();
    EXPECT_EQ(acked, 0u);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  EXPECT_EQ(Count(*a), uint64_t{kN + kM});
  EXPECT_TRUE(Select(*a).ok());
  EXPECT_TRUE(Select(*b).ok());

  // The C++ client keeps what is refused and resends it: nothing is acknowledged while NATS is down, everything
  // once it is back on its store (both replicas reconnect by themselves), and both replicas apply it.
  const std::vector<v1::RunReport> third = Reports("lost-", 20);
  client::TelemetrySender sender(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", a->port()), grpc::InsecureChannelCredentials()),
      SenderOptions(a->port()), client::TelemetrySenderOptions{});
  for (const v1::RunReport& r : third) ASSERT_TRUE(sender.Send(r).ok());
  EXPECT_FALSE(sender.Flush(absl::Seconds(1)).ok());
  EXPECT_EQ(sender.stats().durable, 0u);
  ASSERT_TRUE(nats_->Start());
  // A ReportRun stream whose reports were refused ends only once its pending read completes (server/services.cc):
  // a client that has nothing more to send keeps waiting on it. One more report ends it; the sender then resends
  // everything unacknowledged on a new stream.
  int nudges = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        EXPECT_TRUE(sender.Send(MakeReport(absl::StrCat("nudge-", nudges++), "s-a", 16, 100)).ok());
        return sender.Flush(absl::Seconds(1)).ok();
      },
      absl::Seconds(30)))
      << sender.stats().last_stream_error;
  const uint64_t total = kN + kM + 20 + nudges;
  EXPECT_EQ(sender.stats().durable + sender.stats().duplicate, uint64_t(20 + nudges));
  ASSERT_TRUE(WaitFor([&] { return Count(*a) == total && Count(*b) == total; }, kBound))
      << "a=" << Count(*a) << " b=" << Count(*b);
  ExpectStored(*b, third);
}

TEST_F(ClusterReportsTest, StartFailsClearlyWhenNoNatsServerAnswers) {
  server::ServerOptions o = TestOptions(root_ + "/lonely");
  nats_->Kill();
  o.cluster.nats.servers = {absl::StrCat("nats://127.0.0.1:", FreePort())};
  auto s = server::Server::Start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  EXPECT_NE(s.status().message().find("NATS"), std::string::npos) << s.status();
}

// A single-process store started with --nats brings its runs into the stream before it applies it, so a replica on
// an empty folder gets them; one whose runs the stream partly holds adds only the others; a store that applied the
// stream once does not bring anything again.
TEST_F(ClusterReportsTest, AStoreThatJoinsTheClusterBringsItsRuns) {
  constexpr int kN = 300;
  constexpr int kOverlap = 100;
  constexpr int kOwn = 50;
  const absl::Duration kBound = absl::Seconds(20);
  const std::vector<v1::RunReport> single = Reports("single-", kN);
  std::vector<v1::RunReport> other(single.begin(), single.begin() + kOverlap);
  for (const v1::RunReport& r : Reports("other-", kOwn)) other.push_back(r);
  // Two stores written by single-process servers, in the folders replicas "a" and "c" will use.
  using Store = std::pair<std::string, const std::vector<v1::RunReport>*>;
  for (const Store& store : {Store{"a", &single}, Store{"c", &other}}) {
    const auto& [name, reports] = store;
    auto s = server::Server::Start(TestOptions(root_ + "/" + name));
    ASSERT_TRUE(s.ok()) << s.status();
    RegisterStrategy(**s, "s-a");
    RegisterStrategy(**s, "s-b");
    ReportDurable(**s, *reports);
    (*s)->Shutdown();
  }
  auto probe = cluster::RunStream::Open(ReplicaOptions("probe").cluster.nats);
  ASSERT_TRUE(probe.ok()) << probe.status();
  const auto stream_last = [&] {
    auto bounds = (*probe)->State();
    return bounds.ok() ? bounds->last : uint64_t{0};
  };

  std::unique_ptr<server::Server> a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(stream_last(), uint64_t{kN});
  ASSERT_TRUE(WaitFor([&] { return Serving(*a); }, kBound));
  EXPECT_EQ(Count(*a), uint64_t{kN});
  // B, on an empty folder, holds them once it is SERVING, and the strategies they name (A brought its catalogue
  // into the settings bucket).
  std::unique_ptr<server::Server> b = StartReplica("b");
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Serving(*b); }, kBound));
  EXPECT_EQ(Count(*b), uint64_t{kN});
  ExpectStored(*b, single);
  v1::ListStrategiesResponse list;
  ASSERT_TRUE(b->core().ListStrategies(v1::ListStrategiesRequest(), &list).ok());
  std::set<std::string> strategies;
  for (const v1::Strategy& s : list.strategies()) strategies.insert(s.id());
  EXPECT_EQ(strategies, (std::set<std::string>{"s-a", "s-b"}));

  // C's store shares kOverlap runs with the stream: only its own kOwn are added, and every replica ends with both.
  std::unique_ptr<server::Server> c = StartReplica("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(stream_last(), uint64_t{kN + kOwn});
  for (server::Server* s : {a.get(), b.get(), c.get()}) {
    ASSERT_TRUE(WaitFor([&] { return Count(*s) == kN + kOwn; }, kBound)) << Count(*s);
    ExpectStored(*s, single);
    ExpectStored(*s, other);
  }

  // A restarted on its folder has a stream position now: nothing is brought again.
  a.reset();
  a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Serving(*a); }, kBound));
  EXPECT_EQ(stream_last(), uint64_t{kN + kOwn});
  EXPECT_EQ(Count(*a), uint64_t{kN + kOwn});
}

TEST_F(ClusterReportsTest, ANewReplicaIsServingOnlyOnceItAppliedWhatTheStreamHeld) {
  constexpr int kN = 200;
  const absl::Duration kBound = absl::Seconds(20);
  // The stream is empty when A starts: nothing to catch up, SERVING at once.
  std::unique_ptr<server::Server> a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(Serving(*a));
  RegisterStrategy(*a, "s-a");
  RegisterStrategy(*a, "s-b");
  EXPECT_EQ(Report(*a, Reports("run-", kN), v1::RunAck::RESULT_DURABLE), uint64_t{kN});
  ASSERT_TRUE(WaitFor([&] { return Count(*a) == kN; }, kBound)) << "a=" << Count(*a);

  // C on an empty folder, its applier held before it stores anything: NOT_SERVING, though it answers RPCs.
  absl::Notification release;
  server::ServerOptions o = ReplicaOptions("c");
  o.cluster.before_apply = [&release] { release.WaitForNotificationWithTimeout(absl::Seconds(30)); };
  std::unique_ptr<server::Server> c = StartReplica(o);
  ASSERT_NE(c, nullptr);
  EXPECT_GE(c->core().cluster()->catch_up_sequence(), uint64_t{kN});
  EXPECT_TRUE(NotServing(*c));
  EXPECT_EQ(Count(*c), 0u);
  EXPECT_NE(Select(*c).code(), absl::StatusCode::kUnavailable);
  release.Notify();
  // From here it may turn SERVING at any poll; whenever it says so, it holds every run the stream held.
  ASSERT_TRUE(WaitFor(
      [&] {
        if (!Serving(*c)) return false;
        EXPECT_EQ(Count(*c), uint64_t{kN});
        return true;
      },
      kBound))
      << "c=" << Count(*c);
  EXPECT_EQ(Count(*c), uint64_t{kN});
  EXPECT_TRUE(c->core().cluster()->caught_up());

  // Restarted on its folder with nothing new in the stream: caught up at once.
  c.reset();
  c = StartReplica("c");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(Serving(*c));
  EXPECT_EQ(Count(*c), uint64_t{kN});
}

// Mutual TLS and a user with a password on the NATS connection: the CA, the client certificate and the password
// are each needed; bad files are refused before any connection, naming their flag. (Credentials files need an
// operator-mode NATS server with JWTs, which this test does not set up: only their file checks are tested.)
TEST_F(ClusterReportsTest, AReplicaBehindTheRetentionDoesNotStartAndABackupOfAnotherBringsItBack) {
  constexpr int kN = 20;
  auto with_retention = [&](const std::string& name) {
    server::ServerOptions o = ReplicaOptions(name);
    o.cluster.nats.max_age = absl::Seconds(1);  // the stream keeps a report one second
    o.backup_dir = root_ + "/backups";
    return o;
  };
  std::filesystem::create_directories(root_ + "/backups");
  std::unique_ptr<server::Server> a = StartReplica(with_retention("a"));
  ASSERT_NE(a, nullptr);
  RegisterStrategy(*a, "s-a");
  RegisterStrategy(*a, "s-b");
  EXPECT_EQ(Report(*a, Reports("run-", kN), v1::RunAck::RESULT_DURABLE), uint64_t{kN});
  ASSERT_TRUE(WaitFor([&] { return Count(*a) == kN; }, absl::Seconds(20)));
  {
    Connection c = Connect(a->port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    v1::BackupRequest req;
    req.set_dir("a-now");
    v1::BackupResponse resp;
    const grpc::Status st = c.admin->Backup(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  // The stream's retention removes the reports.
  auto stream = cluster::RunStream::Open(with_retention("probe").cluster.nats);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto b = (*stream)->State();
        return b.ok() && b->first > uint64_t{kN};
      },
      absl::Seconds(30)));
  // A new replica on an empty folder cannot get them from the stream: it refuses to start, and says what to do.
  auto b = server::Server::Start(with_retention("b"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  EXPECT_NE(b.status().message().find(absl::StrCat("removed 1..", kN)), std::string::npos) << b.status();
  EXPECT_NE(b.status().message().find("backup"), std::string::npos) << b.status();
  // Started on the backup of A, it holds every run, at the position stored with them, and is SERVING.
  server::ServerOptions restored = with_retention("unused");
  restored.data_dir = root_ + "/backups/a-now";
  std::unique_ptr<server::Server> c = StartReplica(restored);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(Count(*c), uint64_t{kN});
  EXPECT_TRUE(Serving(*c));
}

TEST_F(ClusterReportsTest, AReplicaWhoseDeliveryDropsMessagesStartsOverAndMissesNone) {
  constexpr int kN = 3000;
  std::unique_ptr<server::Server> a = StartReplica("a");
  ASSERT_NE(a, nullptr);
  RegisterStrategy(*a, "s-a");
  RegisterStrategy(*a, "s-b");
  EXPECT_EQ(Report(*a, Reports("run-", kN), v1::RunAck::RESULT_DURABLE), uint64_t{kN});
  // B applies slowly with a small client buffer: the library drops what does not fit while B works on a batch.
  server::ServerOptions slow = ReplicaOptions("b");
  slow.cluster.nats.pending_messages = 64;
  slow.cluster.max_batch = 32;
  slow.cluster.before_apply = [] { absl::SleepFor(absl::Milliseconds(2)); };
  std::unique_ptr<server::Server> b = StartReplica(slow);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Count(*b) == uint64_t{kN}; }, absl::Seconds(120))) << "b=" << Count(*b);
  const auto& series = b->core().metrics()->EnableCluster();
  EXPECT_GT(series.redeliveries->Value(), 0) << "the delivery never dropped a message: the test did not test";
  EXPECT_EQ(series.skipped->Value(), 0);
  ExpectStored(*b, Reports("run-", kN));
}

TEST_F(ClusterReportsTest, TlsCertificatesAndPasswordsForTheNatsConnection) {
  const std::string certs = root_ + "/certs";
  const std::string cmd = std::string(ACCELSEL_TEST_SOURCE_DIR) + "/tests/server/make_test_certs.sh " + certs;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  nats_.reset();
  const std::string dir = root_ + "/nats-tls";
  std::filesystem::create_directories(dir);
  nats_ = std::make_unique<NatsServer>(
      dir, std::vector<std::string>{"--tls", "--tlscert", certs + "/server.pem", "--tlskey", certs + "/server.key",
                                    "--tlscacert", certs + "/ca.pem", "--tlsverify", "--user", "replica", "--pass",
                                    "s3cret"});
  ASSERT_TRUE(nats_->Start()) << "nats-server did not start; see " << dir << "/nats-server.log";
  auto secured = [&](const std::string& name) {
    server::ServerOptions o = ReplicaOptions(name);
    o.cluster.nats.tls_ca_file = certs + "/ca.pem";
    o.cluster.nats.tls_cert_file = certs + "/client.pem";
    o.cluster.nats.tls_key_file = certs + "/client.key";
    o.cluster.nats.user = "replica";
    o.cluster.nats.password = "s3cret";
    return o;
  };
  std::unique_ptr<server::Server> a = StartReplica(secured("a"));
  ASSERT_NE(a, nullptr);
  RegisterStrategy(*a, "s-a");
  RegisterStrategy(*a, "s-b");
  const std::vector<v1::RunReport> reports = Reports("tls-", 20);
  EXPECT_EQ(Report(*a, reports, v1::RunAck::RESULT_DURABLE), uint64_t{20});
  ASSERT_TRUE(WaitFor([&] { return Count(*a) == 20; }, absl::Seconds(20))) << "a=" << Count(*a);
  ExpectStored(*a, reports);
  EXPECT_TRUE(Serving(*a));

  // Each missing piece refuses the start (the server is up: these are not start-up races).
  auto refused = [&](const server::ServerOptions& o, absl::StatusCode code, const std::string& words) {
    auto s = server::Server::Start(o);
    ASSERT_FALSE(s.ok()) << words;
    EXPECT_EQ(s.status().code(), code) << s.status();
    EXPECT_NE(s.status().message().find(words), std::string::npos) << s.status();
  };
  server::ServerOptions o = secured("no-ca");
  o.cluster.nats.tls_ca_file.clear();
  refused(o, absl::StatusCode::kUnavailable, "--nats_tls_ca");
  o = secured("no-cert");
  o.cluster.nats.tls_cert_file.clear();
  o.cluster.nats.tls_key_file.clear();
  refused(o, absl::StatusCode::kUnavailable, "cannot connect to NATS");
  o = secured("wrong-password");
  o.cluster.nats.password = "guess";
  refused(o, absl::StatusCode::kUnavailable, "cannot connect to NATS");

  // Unreadable or broken files, and half-given pairs: refused naming the flag.
  const std::string junk = root_ + "/junk.pem";
  {
    FILE* f = fopen(junk.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("not a certificate\n", f);
    fclose(f);
  }
  o = secured("bad");
  o.cluster.nats.tls_ca_file = root_ + "/missing.pem";
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_tls_ca");
  o = secured("bad");
  o.cluster.nats.tls_ca_file = junk;
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_tls_ca");
  o = secured("bad");
  o.cluster.nats.tls_cert_file = junk;
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_tls_cert");
  o = secured("bad");
  o.cluster.nats.tls_key_file = root_ + "/missing.key";
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_tls_key");
  o = secured("bad");
  o.cluster.nats.tls_key_file.clear();
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_tls_cert and --nats_tls_key");
  o = secured("bad");
  o.cluster.nats.password.clear();
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_user and --nats_password");
  o = secured("bad");
  o.cluster.nats.creds_file = root_ + "/missing.creds";
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_creds");
  o = secured("bad");
  o.cluster.nats.creds_file = junk;
  refused(o, absl::StatusCode::kInvalidArgument, "--nats_creds");
}

}  // namespace
}  // namespace accelsel::testing
