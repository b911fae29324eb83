// Scrapes /metrics over real HTTP from a running server and checks names, types and that counters move;
// the exposition text is also fed to `promtool check metrics` when promtool is installed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

using ::testing::HasSubstr;

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

// Value of the first sample line starting with `prefix` (name plus labels), or -1.
double Sample(const std::string& text, const std::string& prefix) {
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') {
      const size_t space = text.find(' ', pos + prefix.size());
      return std::stod(text.substr(space + 1, text.find('\n', space) - space - 1));
    }
    pos += prefix.size();
  }
  return -1;
}

TEST(MetricsScrapeTest, ExposesEveryRequiredSeriesAndCountsCalls) {
  auto options = TestOptions(FreshDir("metrics"));
  options.metrics_listen = "127.0.0.1:0";
  auto s = server::Server::Start(options);
  ASSERT_TRUE(s.ok()) << s.status();
  auto& server = **s;
  ASSERT_GT(server.metrics_port(), 0);
  auto conn = Connect(server.port());
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = MakeStrategy("a");
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }
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
        "# TYPE accelsel_model_age_seconds gauge"}) {
    EXPECT_THAT(body, HasSubstr(name));
  }
  EXPECT_EQ(Sample(body, "accelsel_rpc_requests_total{code=\"OK\",method=\"SelectAccelerator\"}"), 2);
  EXPECT_EQ(Sample(body, "accelsel_rpc_requests_total{code=\"INVALID_ARGUMENT\",method=\"SelectAccelerator\"}"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_ingested_total"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_duplicate_total"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_rejected_total{reason=\"metrics.e2e_latency_ms\"}"), 1);
  EXPECT_EQ(Sample(body, "accelsel_runs_stored"), 1);
  EXPECT_EQ(Sample(body, "accelsel_rpc_latency_seconds_count{method=\"SelectAccelerator\"}"), 3);

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

}  // namespace
}  // namespace accelsel::testing
