// Test helpers of cluster mode for replicas in the test's own process: a fixture with a nats-server of its own, a
// replica's options, a retried replica start, a strategy registered and reports sent over gRPC.
#ifndef ACCELSEL_TESTS_CLUSTER_REPLICA_H_
#define ACCELSEL_TESTS_CLUSTER_REPLICA_H_

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster/run_stream.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/cluster/nats_server.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {

// A replica on `o`. JetStream may still be starting when the nats-server's port accepts: retried, bounded. Null
// (and a test failure) when it never starts.
inline std::unique_ptr<server::Server> StartReplicaRetrying(const server::ServerOptions& o) {
  absl::StatusOr<std::unique_ptr<server::Server>> s;
  WaitFor(
      [&] {
        s = server::Server::Start(o);
        return s.ok();
      },
      absl::Seconds(20));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

// The options of a replica named `name` on the nats-server at `nats_url`: its data in `root`/`name`, `name` as its
// replica id, a 1 s shutdown grace (trainer off, as in TestOptions).
inline server::ServerOptions ClusterReplicaOptions(const std::string& root, const std::string& nats_url,
                                                   const std::string& name) {
  server::ServerOptions o = TestOptions(root + "/" + name);
  o.cluster.nats.servers = {nats_url};
  o.cluster.replica_id = name;
  o.shutdown_grace = absl::Seconds(1);
  return o;
}

// Registers MakeStrategy(`id`) on `s` over gRPC; a test failure when refused.
inline void RegisterStrategy(server::Server& s, const std::string& id) {
  Connection c = Connect(s.port());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::RegisterStrategyRequest req;
  *req.mutable_strategy() = MakeStrategy(id);
  v1::RegisterStrategyResponse resp;
  const grpc::Status st = c.selector->RegisterStrategy(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
}

// Sends `reports` to `s` on one ReportRun stream (60 s deadline); a test failure unless each is acknowledged durable.
inline void ReportDurable(server::Server& s, const std::vector<v1::RunReport>& reports) {
  Connection c = Connect(s.port());
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 60);
  for (const v1::RunAck& ack : ReportAll(*c.selector, reports, &ctx)) {
    ASSERT_EQ(ack.result(), v1::RunAck::RESULT_DURABLE) << ack.run_id() << " " << ack.reason();
  }
}

// A test with a nats-server (JetStream) of its own in a fresh folder named after `folder`; skipped when built
// without the NATS client or when nats-server is not installed. The replicas in replicas_ are shut down after the
// test, then the nats-server is killed; the folder is removed when the test passed.
class ClusterTest : public ::testing::Test {
 protected:
  explicit ClusterTest(std::string folder) : folder_(std::move(folder)) {}

  void SetUp() override {
    if (!cluster::RunStream::Available()) GTEST_SKIP() << "built without the NATS C client";
    if (NatsServer::Binary().empty()) GTEST_SKIP() << "nats-server is not installed";
    root_ = FreshDir(folder_);
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

  // ClusterReplicaOptions on this test's folder and nats-server.
  server::ServerOptions ReplicaOptions(const std::string& name) const {
    return ClusterReplicaOptions(root_, nats_->url(), name);
  }

  std::string root_;
  std::unique_ptr<NatsServer> nats_;
  std::vector<std::unique_ptr<server::Server>> replicas_;

 private:
  const std::string folder_;
};

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_CLUSTER_REPLICA_H_
