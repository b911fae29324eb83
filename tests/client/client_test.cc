// Client: retries on UNAVAILABLE only, bounded attempts, deadlines, metadata, backoff bounds.
#include "client/client.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_server.h"

namespace accelsel::client {
namespace {

ClientOptions Options(const std::string& target) {
  ClientOptions o;
  o.target = target;
  o.initial_backoff_ms = 5;
  o.max_backoff_ms = 20;
  return o;
}

TEST(ClientTest, RetriesUnavailableUntilSuccess) {
  testing::FakeServer server;
  server.service().FailNextCalls(2, grpc::StatusCode::UNAVAILABLE);
  auto client = Client::Create(Options(server.address()));
  ASSERT_TRUE(client.ok()) << client.status();
  auto info = (*client)->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(server.service().unary_calls(), 3);
}

TEST(ClientTest, GivesUpAfterMaxAttempts) {
  testing::FakeServer server;
  server.service().FailNextCalls(10, grpc::StatusCode::UNAVAILABLE);
  ClientOptions o = Options(server.address());
  o.max_attempts = 3;
  auto client = Client::Create(o);
  ASSERT_TRUE(client.ok());
  auto r = (*client)->ListStrategies();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server.service().unary_calls(), 3);
}

TEST(ClientTest, DoesNotRetryOtherErrors) {
  testing::FakeServer server;
  server.service().FailNextCalls(1, grpc::StatusCode::INVALID_ARGUMENT);
  auto client = Client::Create(Options(server.address()));
  ASSERT_TRUE(client.ok());
  auto r = (*client)->SelectAccelerator(v1::SelectAcceleratorRequest());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "fake failure");
  EXPECT_EQ(server.service().unary_calls(), 1);
}

TEST(ClientTest, DeadlineBoundsTheCall) {
  testing::FakeServer server;
  server.service().set_unary_delay(absl::Seconds(3));
  ClientOptions o = Options(server.address());
  o.deadline_ms = 200;
  auto client = Client::Create(o);
  ASSERT_TRUE(client.ok());
  const absl::Time start = absl::Now();
  auto r = (*client)->Retrain();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(took, absl::Milliseconds(1500));
}

TEST(ClientTest, UnreachableServerIsUnavailableWithinDeadline) {
  std::string dead;
  {
    testing::FakeServer gone;
    dead = gone.address();
  }
  ClientOptions o = Options(dead);
  o.deadline_ms = 1000;
  o.max_attempts = 50;  // the deadline, not the attempt count, must end this
  auto client = Client::Create(o);
  ASSERT_TRUE(client.ok());
  const absl::Time start = absl::Now();
  auto r = (*client)->GetModelInfo();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(2500));
}

TEST(ClientTest, AdminCallsAndBearerToken) {
  testing::FakeServer server;
  ClientOptions o = Options(server.address());
  o.bearer_token = "tok-1";
  auto client = Client::Create(o);
  ASSERT_TRUE(client.ok());
  v1::Strategy s;
  s.set_id("vllm");
  auto reg = (*client)->RegisterStrategy(s);
  ASSERT_TRUE(reg.ok());
  EXPECT_TRUE(reg->created());
  EXPECT_FALSE((*client)->RegisterStrategy(s)->created());
  EXPECT_EQ(server.service().last_authorization(), "Bearer tok-1");
  auto pin = (*client)->PinModel(3);
  ASSERT_TRUE(pin.ok());
  EXPECT_EQ(pin->serving_version(), 3u);
  auto back = (*client)->RollbackModel();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->serving_version(), 2u);
  auto info = (*client)->GetModelInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->strategies(), 1u);
}

TEST(ClientTest, OptionsAreValidated) {
  ClientOptions o;
  o.deadline_ms = 0;
  EXPECT_FALSE(Client::Create(o).ok());
  o = ClientOptions();
  o.max_attempts = 0;
  EXPECT_FALSE(Client::Create(o).ok());
  o = ClientOptions();
  o.initial_backoff_ms = 500;
  o.max_backoff_ms = 100;
  EXPECT_FALSE(Client::Create(o).ok());
}

TEST(ClientTest, BackoffGrowsIsCappedAndJittered) {
  ClientOptions o;
  o.initial_backoff_ms = 100;
  o.max_backoff_ms = 1000;
  for (int retry = 0; retry < 12; ++retry) {
    const int64_t cap = std::min<int64_t>(1000, int64_t{100} << std::min(retry, 20));
    for (int i = 0; i < 50; ++i) {
      const absl::Duration d = RetryBackoff(o, retry);
      EXPECT_GE(d, absl::Milliseconds(cap) / 2) << retry;
      EXPECT_LE(d, absl::Milliseconds(cap)) << retry;
    }
  }
  // Jitter: 100 draws are not all the same.
  const absl::Duration first = RetryBackoff(o, 3);
  bool differs = false;
  for (int i = 0; i < 100 && !differs; ++i) differs = RetryBackoff(o, 3) != first;
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace accelsel::client
