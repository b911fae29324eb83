// Keepalive against a real server on 127.0.0.1:0 (docs/OPERATIONS.md, "Keepalive"): a client that pings faster
// than --keepalive_min_client_interval loses its connection (GOAWAY too_many_pings), while a client with the
// C++ client's default keepalive keeps its ReportRun stream and its calls through the same period; and one that
// pings as often as the server allows keeps its idle stream.
#include <chrono>
#include <string>

#include "absl/time/clock.h"
#include "client/client.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

TEST(KeepaliveTest, AClientPingingTooOftenIsDisconnectedAndOneWithTheDefaultsKeepsWorking) {
  auto o = TestOptions(FreshDir("keepalive"));
  o.keepalive_time = absl::Seconds(1);  // the server pings both clients during the test as well
  o.keepalive_min_client_interval = absl::Seconds(5);
  o.keepalive_max_ping_strikes = 2;
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  client::ClientOptions defaults;
  defaults.target = absl::StrCat("127.0.0.1:", (*s)->port());

  // Well-behaved: the client library's channel and defaults, with a ReportRun stream open across the whole test.
  auto good_channel = client::MakeChannel(defaults);
  ASSERT_TRUE(good_channel.ok()) << good_channel.status();
  auto good = v1::AcceleratorSelector::NewStub(*good_channel);
  grpc::ClientContext good_ctx;
  SetDeadline(&good_ctx, 60);
  auto good_stream = good->ReportRun(&good_ctx);

  // Abusive: asks for a ping every 10 ms (gRPC sends one a second at most) on its open stream, while the server
  // sends it nothing: every ping after the first is a strike.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto bad_channel = grpc::CreateCustomChannel(defaults.target, grpc::InsecureChannelCredentials(), args);
  auto bad = v1::AcceleratorSelector::NewStub(bad_channel);
  grpc::ClientContext bad_ctx;
  SetDeadline(&bad_ctx, 30);  // bounds the wait: the read below returns when the connection is closed
  const auto abuse_start = std::chrono::steady_clock::now();
  auto bad_stream = bad->ReportRun(&bad_ctx);
  v1::RunAck ack;
  EXPECT_FALSE(bad_stream->Read(&ack));
  const grpc::Status closed = bad_stream->Finish();
  EXPECT_EQ(closed.error_code(), grpc::StatusCode::UNAVAILABLE) << closed.error_message();
  const double abuse_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - abuse_start).count();
  EXPECT_LT(abuse_s, 20) << "closed by the deadline, not by the server";

  // The well-behaved stream lived through it: a report written now is acknowledged.
  ASSERT_TRUE(good_stream->Write(MakeReport("k1", "no-such-strategy", 4, 10)));
  ASSERT_TRUE(good_stream->Read(&ack));
  EXPECT_EQ(ack.run_id(), "k1");
  good_stream->WritesDone();
  EXPECT_TRUE(good_stream->Finish().ok());
  // And its unary calls succeed.
  auto client = client::Client::Create(defaults);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE((*client)->GetModelInfo().ok());
}

// gRPC's own minimum is 5 minutes: without --keepalive_min_client_interval reaching gRPC, this client's pings
// would be strikes, and its connection closed after the third, about 4 s in.
TEST(KeepaliveTest, AClientPingingAsOftenAsTheServerAllowsKeepsItsIdleStream) {
  auto o = TestOptions(FreshDir("keepalive"));
  o.keepalive_min_client_interval = absl::Milliseconds(500);
  o.keepalive_max_ping_strikes = 2;
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  client::ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", (*s)->port());
  options.keepalive_time_ms = 1000;  // gRPC's floor: it sends no two pings less than 1 s apart
  auto channel = client::MakeChannel(options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  auto stub = v1::AcceleratorSelector::NewStub(*channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 60);
  auto stream = stub->ReportRun(&ctx);
  absl::SleepFor(absl::Milliseconds(5500));  // idle: pings only
  ASSERT_TRUE(stream->Write(MakeReport("k1", "no-such-strategy", 4, 10)));
  v1::RunAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.run_id(), "k1");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// --max_connection_age: the server sends GOAWAY to a connection after about that long, so the client's channel
// leaves READY and its next call opens a new connection (where a DNS name would be resolved again); a ReportRun
// stream opened before runs on to its end on the old one.
TEST(KeepaliveTest, MaxConnectionAgeMovesNewCallsToANewConnectionAndLetsOpenStreamsFinish) {
  auto o = TestOptions(FreshDir("keepalive"));
  o.max_connection_age = absl::Seconds(1);
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  client::ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", (*s)->port());
  auto channel = client::MakeChannel(options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  auto stub = v1::AcceleratorSelector::NewStub(*channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 60);
  auto stream = stub->ReportRun(&ctx);
  ASSERT_TRUE(stream->Write(MakeReport("k1", "no-such-strategy", 4, 10)));
  v1::RunAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  ASSERT_EQ((*channel)->GetState(false), GRPC_CHANNEL_READY);

  // GOAWAY after 1 s ± 10 %: the channel stops using the connection (bounded wait on the state change).
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(20);
  grpc_connectivity_state state = GRPC_CHANNEL_READY;
  while (state == GRPC_CHANNEL_READY && std::chrono::system_clock::now() < deadline) {
    (*channel)->WaitForStateChange(state, deadline);
    state = (*channel)->GetState(false);
  }
  EXPECT_NE(state, GRPC_CHANNEL_READY) << "no GOAWAY within 20 s";

  // The stream opened before the GOAWAY is still served, past the age.
  ASSERT_TRUE(stream->Write(MakeReport("k2", "no-such-strategy", 4, 10)));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.run_id(), "k2");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  // The same channel connects again (a new connection: the old one is draining) and serves a new stream.
  EXPECT_TRUE((*channel)->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20)));
  grpc::ClientContext ctx2;
  SetDeadline(&ctx2, 60);
  auto stream2 = stub->ReportRun(&ctx2);
  ASSERT_TRUE(stream2->Write(MakeReport("k3", "no-such-strategy", 4, 10)));
  ASSERT_TRUE(stream2->Read(&ack));
  EXPECT_EQ(ack.run_id(), "k3");
  stream2->WritesDone();
  EXPECT_TRUE(stream2->Finish().ok());
}

}  // namespace
}  // namespace accelsel::testing
