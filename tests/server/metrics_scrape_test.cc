// Scrapes /metrics over real HTTP from a running server and checks names, types and that counters move;
// the exposition text is also fed to `promtool check metrics` when promtool is installed. Also: the endpoint
// answers only once its gauges are loaded, and idle connections cannot hold off scrapes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_server.h"
#include "tests/test_util/fault_env.h"
#include "tests/test_util/http.h"
#include "util/version.h"

namespace accelsel::testing {
namespace {

using ::testing::HasSubstr;

grpc::Status RegisterA(Connection& conn) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::RegisterStrategyRequest req;
  *req.mutable_strategy() = MakeStrategy("a");
  v1::RegisterStrategyResponse resp;
  return conn.selector->RegisterStrategy(&ctx, req, &resp);
}

TEST(MetricsScrapeTest, ExposesEveryRequiredSeriesAndCountsCalls) {
  auto options = TestOptions(FreshDir("metrics"));
  options.metrics_listen = "127.0.0.1:0";
  auto s = server::Server::Start(options);
  ASSERT_TRUE(s.ok()) << s.status();
  auto& server = **s;
  ASSERT_GT(server.metrics_port(), 0);
  auto conn = Connect(server.port());
  ASSERT_TRUE(RegisterA(conn).ok());
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto stream = conn.selector->ReportRun(&ctx);
    stream->Write(MakeReport("m1", "a", 4, 10));
    stream->Write(MakeReport("m1", "a", 4, 10));
    stream->Write(MakeReport("m2", "a", 4, -1));
    stream->WritesDone();
    v1::RunAck ack;
    int n = 0;
    while (stream->Read(&ack)) ++n;
    ASSERT_TRUE(stream->Finish().ok());
    ASSERT_EQ(n, 3);
  }
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::SelectAcceleratorRequest req;
    if (i < 2) *req.mutable_context() = MakeContext(4);  // the third call is invalid
    v1::SelectAcceleratorResponse resp;
    (void)conn.selector->SelectAccelerator(&ctx, req, &resp);
  }

  const std::string response = HttpGet(server.metrics_port(), "/metrics");
  ASSERT_THAT(response, HasSubstr("200 OK"));
  const std::string body = response.substr(response.find("\r\n\r\n") + 4);
  for (const char* name :
       {"# TYPE accelsel_rpc_requests_total counter", "# TYPE accelsel_rpc_latency_seconds histogram",
        "# TYPE accelsel_runs_ingested_total counter", "# TYPE accelsel_runs_rejected_total counter",
        "# TYPE accelsel_runs_duplicate_total counter", "# TYPE accelsel_runs_stored gauge",
        "# TYPE accelsel_storage_bytes gauge", "# TYPE accelsel_model_version gauge",
        "# TYPE accelsel_model_age_seconds gauge", "# TYPE accelsel_build_info gauge",
        "# TYPE grpc_server_started_total counter", "# TYPE grpc_server_handled_total counter",
        "# TYPE grpc_server_handling_seconds histogram", "# TYPE grpc_server_msg_received_total counter",
        "# TYPE grpc_server_msg_sent_total counter"}) {
    EXPECT_THAT(body, HasSubstr(name));
  }
  EXPECT_EQ(Sample(body, "accelsel_rpc_requests_total{code=\"OK\",method=\"SelectAccelerator\"}"), 2);
  EXPECT_EQ(Sample(body, "accelsel_rpc_requests_total{code=\"INVALID_ARGUMENT\",method=\"SelectAccelerator\"}"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_ingested_total"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_duplicate_total"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_rejected_total{reason=\"metrics\"}"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_stored"), 1);
  EXPECT_EQ(Sample(body, "accelsel_rpc_latency_seconds_count{method=\"SelectAccelerator\"}"), 3);
  EXPECT_EQ(Sample(body,
                   "grpc_server_handled_total{grpc_code=\"INVALID_ARGUMENT\",grpc_method=\"SelectAccelerator\","
                   "grpc_service=\"accelsel.v1.AcceleratorSelector\",grpc_type=\"unary\"}"),
            1);
  EXPECT_EQ(Sample(body,
                   "grpc_server_msg_received_total{grpc_method=\"ReportRun\",grpc_service=\"accelsel.v1."
                   "AcceleratorSelector\",grpc_type=\"bidi_stream\"}"),
            3);
  const std::string build_info = "accelsel_build_info{revision=\"" + std::string(util::Revision()) + "\",version=\"" +
                                 std::string(util::Version()) + "\"}";
  EXPECT_EQ(Sample(body, build_info), 1) << build_info;

  if (access("/usr/bin/promtool", X_OK) == 0) {
    const std::string path = FreshDir("promtool") + "/metrics.txt";
    std::ofstream(path) << body;
    FILE* p = popen(("/usr/bin/promtool check metrics < " + path + " 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    while (fgets(buf, sizeof(buf), p)) out += buf;
    EXPECT_EQ(pclose(p), 0) << out;
  } else {
    GTEST_SKIP() << "promtool not installed; exposition format not linted";
  }
}

// A free TCP port on 127.0.0.1 (bound and released; nothing else here takes ports in between).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(MetricsScrapeTest, EndpointAnswersOnlyWithTheStoredGaugesLoaded) {
  const std::string dir = FreshDir("metrics-restart");
  constexpr int kRuns = 500;
  {
    auto s = server::Server::Start(TestOptions(dir));
    ASSERT_TRUE(s.ok()) << s.status();
    auto conn = Connect((*s)->port());
    ASSERT_TRUE(RegisterA(conn).ok());
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto stream = conn.selector->ReportRun(&ctx);
    for (int i = 0; i < kRuns; ++i) stream->Write(MakeReport(absl::StrCat("r", i), "a", 1 + i % 8, 10 + i));
    stream->WritesDone();
    v1::RunAck ack;
    while (stream->Read(&ack)) {
    }
    ASSERT_TRUE(stream->Finish().ok());
    ASSERT_EQ((*s)->core().store()->RunCount(), static_cast<uint64_t>(kRuns));
  }
  // Restart on a fixed port while scraping it as fast as possible: whatever scrape is answered first must already
  // report every stored run.
  // Opening the store reads each of its files slowly, so start-up takes long enough for a scrape to land in it.
  FaultEnv env(/*open_delay=*/absl::Milliseconds(100));
  auto options = TestOptions(dir);
  const int port = FreePort();
  options.metrics_listen = absl::StrCat("127.0.0.1:", port);
  options.storage_env = &env;
  std::atomic<bool> started{false};
  absl::StatusOr<std::unique_ptr<server::Server>> restarted = absl::UnknownError("not started");
  std::thread starter([&] {
    restarted = server::Server::Start(options);
    started = true;
  });
  std::vector<double> seen;  // runs_stored of every answered scrape until the start returned, and one after
  int attempts = 0;
  for (bool last = false; !last;) {
    last = started.load();
    ++attempts;
    const std::string response = HttpGet(port, "/metrics", absl::Seconds(10));
    if (response.find("200 OK") != std::string::npos) {
      seen.push_back(Sample(response.substr(response.find("\r\n\r\n") + 4), "accelsel_runs_stored"));
    }
  }
  starter.join();
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_GT(attempts, 3);  // the start-up took a while, and we kept knocking
  ASSERT_FALSE(seen.empty());
  for (double v : seen) EXPECT_EQ(v, kRuns);
}

// Connections that never send a request must not hold off scrapes: each holds a worker only until the read timeout.
TEST(MetricsScrapeTest, IdleConnectionsDoNotBlindTheEndpoint) {
  auto options = TestOptions(FreshDir("metrics-idle"));
  options.metrics_listen = "127.0.0.1:0";
  auto s = server::Server::Start(options);
  ASSERT_TRUE(s.ok()) << s.status();
  const int port = (*s)->metrics_port();
  const server::Metrics::HttpOptions http;
  std::vector<int> idle;
  auto close_all = [&] {
    for (int fd : idle) close(fd);
    idle.clear();
  };
  // Fewer idle connections than worker threads: a scrape answers at once.
  for (int i = 0; i < http.threads / 2; ++i) idle.push_back(ConnectTcp(port));
  auto t0 = absl::Now();
  EXPECT_THAT(HttpGet(port, "/metrics", absl::Seconds(2)), HasSubstr("200 OK"));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  // More idle connections than threads: a scrape still answers, within one read timeout.
  for (int i = 0; i < http.threads; ++i) idle.push_back(ConnectTcp(port));
  t0 = absl::Now();
  EXPECT_THAT(HttpGet(port, "/metrics", http.request_timeout + absl::Seconds(3)), HasSubstr("200 OK"));
  EXPECT_LT(absl::Now() - t0, http.request_timeout + absl::Seconds(3));
  // And the server has dropped the idle connections that timed out (a read sees end-of-file, bounded wait).
  char buf[512];
  ssize_t n;
  while ((n = read(idle.front(), buf, sizeof(buf))) > 0) {
  }
  EXPECT_EQ(n, 0) << "the idle connection is still open";
  close_all();
}

}  // namespace
}  // namespace accelsel::testing
