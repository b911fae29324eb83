// Cluster mode for models, end to end on real components: a nats-server with JetStream (a child process), two
// accelsel replicas in this process that both run the trainer. One holds the lease and trains; both serve its
// version; retrain, pin and rollback work from either; when the trainer stops, the other takes over.
#include "server/cluster_models.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

TEST(ServingPointerTest, RoundTripsAndRefusesWhatItCannotRead) {
  server::ServingPointer p;
  p.version = 7;
  p.pinned = true;
  p.ref = {7, 10, 12, 3, 1300000, std::string(64, 'a')};
  p.info.set_version(7);
  p.info.set_note("promoted: better");
  p.writer = "replica-1";
  auto back = server::DecodePointer(server::EncodePointer(p));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->version, 7u);
  EXPECT_TRUE(back->pinned);
  EXPECT_EQ(back->ref.first_sequence, 10u);
  EXPECT_EQ(back->ref.last_sequence, 12u);
  EXPECT_EQ(back->ref.chunks, 3u);
  EXPECT_EQ(back->ref.bytes, 1300000u);
  EXPECT_EQ(back->ref.version, 7u);
  EXPECT_EQ(back->info.note(), "promoted: better");
  EXPECT_EQ(back->writer, "replica-1");
  EXPECT_FALSE(server::DecodePointer("pinned=1\n").ok());                // no version
  EXPECT_FALSE(server::DecodePointer("version=3\nchunks=x\n").ok());     // a number that is not one
  EXPECT_FALSE(server::DecodePointer("version=3\ninfo=%%%\n").ok());     // not base64
  EXPECT_TRUE(server::DecodePointer("version=3\nfuture_key=1\n").ok());  // a newer writer's extra key
}

// Ground truth: "small" is faster below batch 16, "large" above.
double LatencyMs(const std::string& strategy, uint32_t batch) {
  return strategy == "small" ? 20.0 * batch : 160.0 + 10.0 * batch;
}

class ClusterModelsTest : public ClusterTest {
 protected:
  ClusterModelsTest() : ClusterTest("cluster-models") {}

  std::unique_ptr<server::Server> StartReplica(const std::string& name) {
    server::ServerOptions o = ReplicaOptions(name);
    o.cluster.trainer_lease = absl::Seconds(1);
    o.trainer_enabled = true;
    o.retrain_interval = absl::Hours(1);  // the first model comes from the initial trigger, the rest from RPCs
    o.retrain_min_new_runs = 0;
    o.retrain_growth = 0;
    std::unique_ptr<server::Server> s = StartReplicaRetrying(o);
    if (s == nullptr) return nullptr;
    for (const char* id : {"small", "large"}) RegisterStrategy(*s, id);
    return s;
  }

  // Runs of both strategies over a range of batch sizes, enough to train on.
  static std::vector<v1::RunReport> Runs(const std::string& prefix, int n) {
    std::vector<v1::RunReport> out;
    for (int i = 0; i < n; ++i) {
      const uint32_t batch = 1u << (i % 6);
      const std::string strategy = i % 2 == 0 ? "small" : "large";
      out.push_back(
          MakeReport(absl::StrCat(prefix, i), strategy, batch, LatencyMs(strategy, batch) * (1 + (i % 5) * 0.01)));
    }
    return out;
  }

  static uint64_t ServingVersion(server::Server& s) {
    auto m = s.core().models().Serving();
    return m != nullptr ? m->info.version() : 0;
  }
  static bool Trainer(server::Server& s) { return s.core().cluster_models()->trainer(); }

  static grpc::Status Admin(server::Server& s, const std::string& what, uint64_t version, uint64_t* serving) {
    Connection c = Connect(s.port());
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    if (what == "retrain") {
      v1::RetrainRequest req;
      v1::RetrainResponse resp;
      grpc::Status st = c.admin->Retrain(&ctx, req, &resp);
      *serving = resp.candidate().promoted() ? resp.candidate().version() : 0;
      return st;
    }
    if (what == "pin") {
      v1::PinModelRequest req;
      req.set_version(version);
      v1::PinModelResponse resp;
      grpc::Status st = c.admin->PinModel(&ctx, req, &resp);
      *serving = resp.serving_version();
      return st;
    }
    v1::RollbackModelRequest req;
    v1::RollbackModelResponse resp;
    grpc::Status st = c.admin->RollbackModel(&ctx, req, &resp);
    *serving = resp.serving_version();
    return st;
  }
};

TEST_F(ClusterModelsTest, LeaseIsExclusiveAndLapsesWithoutRenewal) {
  cluster::RunStreamOptions connection;
  connection.servers = {nats_->url()};
  cluster::CoordinationOptions options;
  options.lease_period = absl::Seconds(1);
  auto x = cluster::Coordination::Open(connection, options);
  auto y = cluster::Coordination::Open(connection, options);
  ASSERT_TRUE(x.ok() && y.ok()) << x.status() << " " << y.status();
  std::string holder;
  auto held = (*x)->HoldLease("x", &holder);
  ASSERT_TRUE(held.ok() && *held) << held.status();
  held = (*y)->HoldLease("y", &holder);
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(*held);
  EXPECT_EQ(holder, "x");
  held = (*x)->HoldLease("x", &holder);  // renewal
  ASSERT_TRUE(held.ok() && *held);
  // x stops renewing: the key expires and y takes it, within two lease periods.
  const absl::Time lapse = absl::Now();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto h = (*y)->HoldLease("y", &holder);
        return h.ok() && *h;
      },
      absl::Seconds(5)));
  EXPECT_LT(absl::Now() - lapse, absl::Seconds(3));  // two periods, and the server's expiry timer
  held = (*x)->HoldLease("x", &holder);              // x's conditional renewal now fails
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(*held);
  EXPECT_EQ(holder, "y");
  // Released on shutdown: taken at once.
  (*y)->ReleaseLease("y");
  held = (*x)->HoldLease("x", &holder);
  ASSERT_TRUE(held.ok() && *held) << held.status();
}

TEST_F(ClusterModelsTest, ModelsTravelInChunksAndAreCheckedByDigest) {
  cluster::RunStreamOptions connection;
  connection.servers = {nats_->url()};
  cluster::CoordinationOptions options;
  options.chunk_bytes = 1000;
  auto c = cluster::Coordination::Open(connection, options);
  ASSERT_TRUE(c.ok()) << c.status();
  std::string blob;
  for (int i = 0; i < 4500; ++i) blob.push_back(static_cast<char>(i * 7));
  auto ref = (*c)->PublishModel(3, blob);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->chunks, 5u);
  EXPECT_EQ(ref->last_sequence - ref->first_sequence, 4u);
  auto other = (*c)->PublishModel(4, "another model");  // does not disturb the first
  ASSERT_TRUE(other.ok());
  auto back = (*c)->FetchModel(*ref);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, blob);
  cluster::ModelRef wrong = *ref;
  wrong.sha256 = cluster::Sha256Hex("something else");
  EXPECT_EQ((*c)->FetchModel(wrong).status().code(), absl::StatusCode::kDataLoss);
  // The pointer moves only from the revision its writer read.
  auto r1 = (*c)->SetPointer("version=3\n", 0);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ((*c)->SetPointer("version=4\n", 0).status().code(), absl::StatusCode::kFailedPrecondition);
  auto r2 = (*c)->SetPointer("version=4\n", *r1);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ((*c)->SetPointer("version=5\n", *r1).status().code(), absl::StatusCode::kFailedPrecondition);
  auto now = (*c)->GetPointer();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->revision, *r2);
  EXPECT_EQ(now->value, "version=4\n");
}

TEST_F(ClusterModelsTest, OneTrainerTrainsAndEveryReplicaServesItsVersion) {
  replicas_.push_back(StartReplica("a"));
  replicas_.push_back(StartReplica("b"));
  ASSERT_NE(replicas_[0], nullptr);
  ASSERT_NE(replicas_[1], nullptr);
  server::Server& a = *replicas_[0];
  server::Server& b = *replicas_[1];
  ASSERT_TRUE(WaitFor([&] { return Trainer(a) || Trainer(b); }, absl::Seconds(10))) << "no trainer elected";
  EXPECT_NE(Trainer(a), Trainer(b)) << "exactly one replica holds the lease";

  const std::vector<v1::RunReport> runs = Runs("r", 300);
  ReportDurable(a, runs);
  // The trainer's initial retrain, then the pointer: both replicas serve the same version.
  ASSERT_TRUE(
      WaitFor([&] { return ServingVersion(a) != 0 && ServingVersion(a) == ServingVersion(b); }, absl::Seconds(120)))
      << "a serves " << ServingVersion(a) << ", b serves " << ServingVersion(b);
  const uint64_t v1 = ServingVersion(a);
  // The same blob, byte for byte, in both stores.
  auto blob_a = a.core().store()->GetModel(v1);
  auto blob_b = b.core().store()->GetModel(v1);
  ASSERT_TRUE(blob_a.ok() && blob_b.ok());
  EXPECT_EQ(cluster::Sha256Hex(blob_a->blob), cluster::Sha256Hex(blob_b->blob));
  EXPECT_EQ(Trainer(a), !Trainer(b));
  server::Server& follower = Trainer(a) ? b : a;
  server::Server& trainer = Trainer(a) ? a : b;
  EXPECT_EQ(follower.core().metrics()->EnableCluster().models_installed->Value(), 1);
  EXPECT_EQ(trainer.core().metrics()->EnableCluster().models_published->Value(), 1);

  // Retrain called on the follower runs on the trainer; the follower serves the outcome when the call returns.
  uint64_t promoted = 0;
  grpc::Status st = Admin(follower, "retrain", 0, &promoted);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const uint64_t v2 = promoted != 0 ? promoted : v1;
  EXPECT_EQ(ServingVersion(follower), v2);
  ASSERT_TRUE(WaitFor([&] { return ServingVersion(trainer) == v2; }, absl::Seconds(10)));

  // Pin from the follower: both serve v1, pinned.
  uint64_t serving = 0;
  st = Admin(follower, "pin", v1, &serving);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(serving, v1);
  EXPECT_EQ(ServingVersion(follower), v1);
  EXPECT_TRUE(follower.core().models().pinned());
  ASSERT_TRUE(
      WaitFor([&] { return ServingVersion(trainer) == v1 && trainer.core().models().pinned(); }, absl::Seconds(10)));
  // A version that does not exist is refused by the trainer, with its reason.
  st = Admin(follower, "pin", 999, &serving);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_NE(st.error_message().find("999"), std::string::npos) << st.error_message();
  // Unpin: the newest promoted version serves again everywhere.
  st = Admin(follower, "pin", 0, &serving);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(serving, v2);
  ASSERT_TRUE(WaitFor(
      [&] {
        return ServingVersion(trainer) == v2 && !trainer.core().models().pinned() && ServingVersion(follower) == v2;
      },
      absl::Seconds(10)));
}

TEST_F(ClusterModelsTest, AnotherReplicaTakesOverWhenTheTrainerStops) {
  replicas_.push_back(StartReplica("a"));
  replicas_.push_back(StartReplica("b"));
  ASSERT_NE(replicas_[0], nullptr);
  ASSERT_NE(replicas_[1], nullptr);
  ASSERT_TRUE(WaitFor([&] { return Trainer(*replicas_[0]) || Trainer(*replicas_[1]); }, absl::Seconds(10)));
  ReportDurable(*replicas_[0], Runs("r", 300));
  ASSERT_TRUE(WaitFor(
      [&] {
        return ServingVersion(*replicas_[0]) != 0 && ServingVersion(*replicas_[0]) == ServingVersion(*replicas_[1]);
      },
      absl::Seconds(120)));
  const size_t t = Trainer(*replicas_[0]) ? 0 : 1;
  server::Server& survivor = *replicas_[1 - t];
  EXPECT_FALSE(Trainer(survivor));
  replicas_[t]->Shutdown();  // gives the lease up
  replicas_[t].reset();
  // Within two lease periods (plus a tick) the survivor holds the lease and trains on its own.
  const absl::Time stopped = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return Trainer(survivor); }, absl::Seconds(10)));
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(3));
  const uint64_t before = ServingVersion(survivor);
  uint64_t promoted = 0;
  grpc::Status st = Admin(survivor, "retrain", 0, &promoted);
  ASSERT_TRUE(st.ok()) << st.error_message();
  // Its version numbers continue after the ones it received.
  auto list = survivor.core().store()->ListModels();
  ASSERT_TRUE(list.ok());
  ASSERT_FALSE(list->empty());
  EXPECT_GT(list->front().version(), before);
}

}  // namespace
}  // namespace accelsel::testing
