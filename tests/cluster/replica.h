// Test helpers of cluster mode for replicas in the test's own process.
#ifndef ACCELSEL_TESTS_CLUSTER_REPLICA_H_
#define ACCELSEL_TESTS_CLUSTER_REPLICA_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/cluster/nats_server.h"

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

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_CLUSTER_REPLICA_H_
