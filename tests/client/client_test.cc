// Client: gRPC's retries per the service config (UNAVAILABLE for the retried methods, RESOURCE_EXHAUSTED after the
// server's pushback for reads, never Retrain or RollbackModel), bounded attempts, deadlines, metadata, the
// server's error details, backoff bounds.
#include "client/client.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
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

TEST(ClientTest, RetriesIdempotentChangesOnUnavailable) {
  testing::FakeServer server;
  auto client = Client::Create(Options(server.address()));
  ASSERT_TRUE(client.ok());
  v1::Strategy s;
  s.set_id("vllm");
  server.service().FailNextCalls(1, grpc::StatusCode::UNAVAILABLE);
  auto reg = (*client)->RegisterStrategy(s);
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_TRUE(reg->created());
  server.service().FailNextCalls(1, grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE((*client)->PinModel(3).ok());
  EXPECT_EQ(server.service().unary_calls(), 4);
}

TEST(ClientTest, NeverRetriesRetrainOrRollback) {
  testing::FakeServer server;
  auto client = Client::Create(Options(server.address()));
  ASSERT_TRUE(client.ok());
  server.service().FailNextCalls(1, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ((*client)->Retrain().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server.service().unary_calls(), 1);
  server.service().FailNextCalls(1, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ((*client)->RollbackModel().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server.service().unary_calls(), 2);
}

// A rate-limited read is repeated after the server's grpc-retry-pushback-ms (not the 5..20 ms backoff); a
// rate-limited change is reported at once.
TEST(ClientTest, RetriesReadsOnResourceExhaustedAfterThePushback) {
  testing::FakeServer server;
  auto client = Client::Create(Options(server.address()));
  ASSERT_TRUE(client.ok());
  server.service().FailNextCalls(1, grpc::StatusCode::RESOURCE_EXHAUSTED, {{"grpc-retry-pushback-ms", "300"}});
  const absl::Time start = absl::Now();
  auto info = (*client)->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(290));
  EXPECT_EQ(server.service().unary_calls(), 2);

  server.service().FailNextCalls(1, grpc::StatusCode::RESOURCE_EXHAUSTED, {{"grpc-retry-pushback-ms", "300"}});
  v1::Strategy s;
  s.set_id("vllm");
  EXPECT_EQ((*client)->RegisterStrategy(s).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(server.service().unary_calls(), 3);
}

TEST(ClientTest, GivesUpAfterMaxAttempts) {
  for (int attempts : {3, 1}) {  // 1 = no retry
    testing::FakeServer server;
    server.service().FailNextCalls(10, grpc::StatusCode::UNAVAILABLE);
    ClientOptions o = Options(server.address());
    o.max_attempts = attempts;
    auto client = Client::Create(o);
    ASSERT_TRUE(client.ok());
    auto r = (*client)->ListStrategies();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(server.service().unary_calls(), attempts);
  }
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
  o.max_attempts = 5;
  auto client = Client::Create(o);
  ASSERT_TRUE(client.ok());
  const absl::Time start = absl::Now();
  auto r = (*client)->GetModelInfo();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(2500));
}

// One deadline covers every attempt: a server that keeps answering UNAVAILABLE, with retries 400 ms apart, ends the
// call at its 600 ms deadline, before the attempts run out.
TEST(ClientTest, DeadlineCoversEveryRetry) {
  testing::FakeServer server;
  server.service().FailNextCalls(10, grpc::StatusCode::UNAVAILABLE);
  ClientOptions o = Options(server.address());
  o.deadline_ms = 600;
  o.max_attempts = 5;
  o.initial_backoff_ms = 400;
  o.max_backoff_ms = 400;
  auto client = Client::Create(o);
  ASSERT_TRUE(client.ok());
  const absl::Time start = absl::Now();
  const absl::Status st = (*client)->GetModelInfo().status();
  EXPECT_TRUE(st.code() == absl::StatusCode::kDeadlineExceeded || st.code() == absl::StatusCode::kUnavailable) << st;
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
  EXPECT_LT(server.service().unary_calls(), 5);
}

// The server's google.rpc.Status (grpc-status-details-bin) reaches the caller as payloads keyed by type URL.
TEST(ClientTest, ErrorDetailsBecomePayloads) {
  google::rpc::BadRequest bad;
  auto* v = bad.add_field_violations();
  v->set_field("top_k");
  v->set_description("must be <= 256 (got 1000)");
  google::rpc::Status details;
  details.set_code(grpc::StatusCode::INVALID_ARGUMENT);
  details.set_message("top_k: must be <= 256 (got 1000)");
  details.add_details()->PackFrom(bad);
  const absl::Status st =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, details.message(), details.SerializeAsString()));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "top_k: must be <= 256 (got 1000)");
  auto payload = st.GetPayload("type.googleapis.com/google.rpc.BadRequest");
  ASSERT_TRUE(payload.has_value());
  google::rpc::BadRequest back;
  ASSERT_TRUE(back.ParseFromString(std::string(*payload)));
  ASSERT_EQ(back.field_violations_size(), 1);
  EXPECT_EQ(back.field_violations(0).field(), "top_k");
  // No details, or bytes that are not a google.rpc.Status: the code and message alone.
  EXPECT_FALSE(FromGrpcStatus(grpc::Status(grpc::StatusCode::INTERNAL, "x", "\xff\xff"))
                   .GetPayload("type.googleapis.com/google.rpc.BadRequest"));
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

std::string ReadFixture(const std::string& name) {
  const char* d = std::getenv("ACCELSEL_SOURCE_DIR");
  std::ifstream in(std::string(d != nullptr ? d : ".") + "/tests/fixtures/tls/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ClientTest, TlsWithRootCa) {
  const std::string ca = ReadFixture("ca.pem");
  const std::string cert = ReadFixture("server.pem");
  ASSERT_FALSE(ca.empty());
  ASSERT_FALSE(cert.empty());
  testing::FakeServer server(cert, ReadFixture("server.key"));

  ClientOptions o = Options(server.address());
  o.tls_root_ca_pem = ca;
  o.bearer_token = "over-tls";
  auto secure = Client::Create(o);
  ASSERT_TRUE(secure.ok());
  auto info = (*secure)->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(server.service().last_authorization(), "Bearer over-tls");

  // Plaintext to a TLS port, and TLS that trusts the wrong root, both fail (and are not retried forever).
  o.deadline_ms = 2000;
  o.tls_root_ca_pem.clear();
  EXPECT_FALSE((*Client::Create(o))->GetModelInfo().ok());
  o.tls_root_ca_pem = ReadFixture("other_ca.pem");
  EXPECT_FALSE((*Client::Create(o))->GetModelInfo().ok());
  EXPECT_EQ(server.service().unary_calls(), 1);
}

TEST(ClientTest, OptionsAreValidated) {
  ClientOptions o;
  o.deadline_ms = 0;
  EXPECT_FALSE(Client::Create(o).ok());
  o = ClientOptions();
  o.max_attempts = 0;
  EXPECT_FALSE(Client::Create(o).ok());
  o.max_attempts = 6;  // above gRPC's limit of 5
  EXPECT_FALSE(Client::Create(o).ok());
  o.max_attempts = 5;
  EXPECT_TRUE(Client::Create(o).ok());
  o = ClientOptions();
  o.initial_backoff_ms = 500;
  o.max_backoff_ms = 100;
  EXPECT_FALSE(Client::Create(o).ok());
  o.initial_backoff_ms = 0;  // gRPC's retry policy needs a positive initial backoff
  EXPECT_FALSE(Client::Create(o).ok());
}

// The service config gRPC is given: the retried methods by kind, the options' numbers in gRPC's forms.
TEST(ClientTest, RetryServiceConfigNamesTheRetriedMethods) {
  ClientOptions o;
  o.max_attempts = 3;
  o.initial_backoff_ms = 50;
  o.max_backoff_ms = 1500;
  const std::string config = RetryServiceConfig(o);
  EXPECT_NE(config.find(R"("maxAttempts":3,"initialBackoff":"0.050s","maxBackoff":"1.500s")"), std::string::npos)
      << config;
  EXPECT_NE(config.find(R"("method":"SelectAccelerator")"), std::string::npos) << config;
  EXPECT_NE(config.find(R"("service":"grpc.health.v1.Health","method":"Check")"), std::string::npos) << config;
  EXPECT_NE(config.find(R"(["UNAVAILABLE","RESOURCE_EXHAUSTED"])"), std::string::npos) << config;
  for (const char* never : {"Retrain", "RollbackModel", "Backup", "ReportRun"}) {
    EXPECT_EQ(config.find(absl::StrCat(R"(")", never, R"(")")), std::string::npos) << never;
  }
  o.max_attempts = 1;
  EXPECT_EQ(RetryServiceConfig(o), "{}");
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
