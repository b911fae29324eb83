// The server's interceptors (server/interceptors.h) against a real server on 127.0.0.1:0: grpc_server_* series
// for every call — our services, gRPC's health, and calls to methods no service has — and channelz (--channelz)
// reachable by operators only when tokens are on.
//
// Channelz is a process-wide gRPC plugin: once a server of this process enabled it, every later one serves it.
// ctest runs each case in a process of its own; run as one binary, the case that needs it off comes first.
#include <string>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server/test_server.h"
#include "tests/test_util/registry.h"

namespace accelsel::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kChannelzGetServers[] = "/grpc.channelz.v1.Channelz/GetServers";

// A call with an empty request: the channelz messages' C++ classes are not installed, and an empty
// GetServersRequest is zero bytes.
grpc::Status EmptyCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                       const std::string& token, grpc::ByteBuffer* response) {
  return RawUnary(channel, method, Bytes(""), response, token);
}

Labels Method(const std::string& type, const std::string& service, const std::string& method,
              const std::string& code = "") {
  Labels labels = {{"grpc_type", type}, {"grpc_service", service}, {"grpc_method", method}};
  if (!code.empty()) labels["grpc_code"] = code;
  return labels;
}

class InterceptorsTest : public ::testing::Test {
 protected:
  void Start(bool channelz, bool tokens) {
    dir_ = FreshDir("interceptors");
    auto o = TestOptions(dir_);
    o.channelz = channelz;
    if (tokens) o.access.auth_tokens_file = WriteTokenFile(dir_);
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    conn_ = Connect(server_->port());
  }
  server::Metrics& metrics() { return *server_->core().metrics(); }

  std::string dir_;
  std::unique_ptr<server::Server> server_;
  Connection conn_;
};

// First in this file: see the note at the top.
TEST_F(InterceptorsTest, ChannelzIsOffByDefault) {
  Start(/*channelz=*/false, /*tokens=*/false);
  grpc::ByteBuffer response;
  EXPECT_EQ(EmptyCall(conn_.channel, kChannelzGetServers, "", &response).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(InterceptorsTest, EveryCallIsCountedByServiceMethodTypeAndCode) {
  Start(/*channelz=*/false, /*tokens=*/false);
  const std::string kSelector = "accelsel.v1.AcceleratorSelector";
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = MakeStrategy("a");
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn_.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }
  for (bool valid : {true, false}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::SelectAcceleratorRequest req;
    if (valid) *req.mutable_context() = MakeContext(4);
    v1::SelectAcceleratorResponse resp;
    EXPECT_EQ(conn_.selector->SelectAccelerator(&ctx, req, &resp).ok(), valid);
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto stream = conn_.selector->ReportRun(&ctx);
    ASSERT_TRUE(stream->Write(MakeReport("r1", "a", 4, 10)));
    ASSERT_TRUE(stream->Write(MakeReport("r2", "a", 4, 11)));
    stream->WritesDone();
    v1::RunAck ack;
    int acks = 0;
    while (stream->Read(&ack)) ++acks;
    ASSERT_TRUE(stream->Finish().ok());
    ASSERT_EQ(acks, 2);
  }
  {
    auto health = grpc::health::v1::Health::NewStub(conn_.channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  }
  grpc::ByteBuffer response;
  EXPECT_EQ(EmptyCall(conn_.channel, "/accelsel.v1.AcceleratorSelector/NoSuchMethod", "", &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  // Recorded before the status is sent, so every series is final once the client has its answer.
  const Labels select = Method("unary", kSelector, "SelectAccelerator");
  EXPECT_EQ(Value(metrics(), "grpc_server_started_total", select), 2);
  EXPECT_EQ(Value(metrics(), "grpc_server_handled_total", Method("unary", kSelector, "SelectAccelerator", "OK")), 1);
  EXPECT_EQ(Value(metrics(), "grpc_server_handled_total",
                  Method("unary", kSelector, "SelectAccelerator", "INVALID_ARGUMENT")),
            1);
  EXPECT_EQ(Value(metrics(), "grpc_server_handling_seconds", select), 2);
  EXPECT_EQ(Value(metrics(), "grpc_server_msg_received_total", select), 2);
  EXPECT_EQ(Value(metrics(), "grpc_server_msg_sent_total", select), 1);  // the refused call sent no answer

  const Labels report = Method("bidi_stream", kSelector, "ReportRun");
  EXPECT_EQ(Value(metrics(), "grpc_server_started_total", report), 1);
  EXPECT_EQ(Value(metrics(), "grpc_server_handled_total", Method("bidi_stream", kSelector, "ReportRun", "OK")), 1);
  EXPECT_EQ(Value(metrics(), "grpc_server_handling_seconds", report), 1);  // the stream's lifetime
  EXPECT_EQ(Value(metrics(), "grpc_server_msg_received_total", report), 2);
  EXPECT_EQ(Value(metrics(), "grpc_server_msg_sent_total", report), 2);
  // accelsel's own per-call histogram leaves stream lifetimes out.
  EXPECT_EQ(Value(metrics(), "accelsel_rpc_latency_seconds", {{"method", "ReportRun"}}), std::nullopt);
  EXPECT_EQ(Value(metrics(), "accelsel_rpc_requests_total", {{"method", "ReportRun"}, {"code", "OK"}}), 1);

  EXPECT_EQ(Value(metrics(), "grpc_server_handled_total", Method("unary", "grpc.health.v1.Health", "Check", "OK")), 1);
  EXPECT_EQ(
      Value(metrics(), "grpc_server_handled_total", Method("server_stream", "grpc.health.v1.Health", "Watch", "OK")),
      0);
  EXPECT_EQ(Value(metrics(), "grpc_server_started_total",
                  Method("bidi_stream", "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo")),
            0);

  // A made-up path counts under "unknown": no label value comes from the peer.
  EXPECT_EQ(Value(metrics(), "grpc_server_handled_total", Method("unknown", "unknown", "unknown", "UNIMPLEMENTED")), 1);
  for (const auto& family : metrics().registry().Collect()) {
    for (const auto& series : family.metric) {
      for (const auto& label : series.label) EXPECT_NE(label.value, "NoSuchMethod") << family.name;
    }
  }
}

TEST_F(InterceptorsTest, WithTokensChannelzAnswersOperatorsOnly) {
  Start(/*channelz=*/true, /*tokens=*/true);
  grpc::ByteBuffer response;
  const grpc::Status anonymous = EmptyCall(conn_.channel, kChannelzGetServers, "", &response);
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAUTHENTICATED) << anonymous.error_message();
  EXPECT_EQ(response.Length(), 0u);
  const grpc::Status node = EmptyCall(conn_.channel, kChannelzGetServers, kNodeToken, &response);
  EXPECT_EQ(node.error_code(), grpc::StatusCode::PERMISSION_DENIED) << node.error_message();
  EXPECT_THAT(node.error_message(), HasSubstr("grpc.channelz.v1.Channelz needs the operator role"));
  EXPECT_EQ(response.Length(), 0u);
  const grpc::Status operator_call = EmptyCall(conn_.channel, kChannelzGetServers, kOperatorToken, &response);
  ASSERT_TRUE(operator_call.ok()) << operator_call.error_message();
  EXPECT_GT(response.Length(), 0u);  // this server, at least

  const std::string kChannelz = "grpc.channelz.v1.Channelz";
  EXPECT_EQ(Value(metrics(), "grpc_server_handled_total", Method("unary", kChannelz, "GetServers", "OK")), 1);
  EXPECT_EQ(Value(metrics(), "grpc_server_handled_total", Method("unary", kChannelz, "GetServers", "UNAUTHENTICATED")),
            1);
  EXPECT_EQ(
      Value(metrics(), "grpc_server_handled_total", Method("unary", kChannelz, "GetServers", "PERMISSION_DENIED")), 1);
}

TEST(AdmitOperatorTest, WithoutTokensEveryCallerIsAnOperator) {
  auto access = server::AccessControl::Create(server::AccessOptions{});
  ASSERT_TRUE(access.ok());
  EXPECT_TRUE((*access)->AdmitOperator({}, "grpc.channelz.v1.Channelz").ok());
}

}  // namespace
}  // namespace accelsel::testing
