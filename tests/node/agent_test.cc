// node/agent against a real accelsel server on 127.0.0.1:0 with the fake engine: every job is selected over the
// strategies whose model files exist, run with the first-placed strategy's settings, and reported with the
// decision_id (stored and joined); a model that fails to load is reported as a failed run; with the server
// unreachable every job still runs llama.cpp's defaults and the reports queue, bounded.
#include "node/agent.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/catalogue.h"
#include "tests/node/fake_engine.h"
#include "tests/node/gguf_writer.h"
#include "tests/node/node_test_util.h"
#include "tests/server/test_server.h"

namespace accelsel::node {
namespace {

using testing::FakeEngine;
using ::testing::HasSubstr;
using testing::LlamaModel;
using testing::TestHost;

// A port nothing listens on: bound, read back and closed again.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = testing::TempDir("node-agent");
    models_dir_ = dir + "/models";
    std::filesystem::create_directories(models_dir_);
    // "tiny" has an F16 and a Q4_0 file only: the candidates are the 33 strategies that run those.
    LlamaModel(2, 64, 4, 4, 128).Write(models_dir_ + "/tiny.F16.gguf");
    LlamaModel(2, 64, 4, 4, 128, 0, 0, /*file_type=*/2).Write(models_dir_ + "/tiny.Q4_0.gguf");
    LlamaModel(2, 64, 4, 4, 128).Write(models_dir_ + "/broken.F16.gguf");
    server::ServerOptions o = accelsel::testing::TestOptions(dir + "/data");
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  std::unique_ptr<client::Client> MakeClient(int port, int max_attempts = 4, int64_t deadline_ms = 10000) {
    client::ClientOptions options;
    options.target = absl::StrCat("127.0.0.1:", port);
    options.max_attempts = max_attempts;
    options.deadline_ms = deadline_ms;
    auto c = client::Client::Create(options);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Polls `read` until `done` holds or 30 s pass (the server joins runs with decisions off the request path).
  template <typename T>
  T Poll(const std::function<T()>& read, const std::function<bool(const T&)>& done) {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    T value = read();
    while (!done(value) && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(20));
      value = read();
    }
    return value;
  }

  std::string models_dir_;
  std::unique_ptr<server::Server> server_;
};

std::vector<Job> Jobs(const std::string& text) {
  auto jobs = ParseJobs(text, "jobs.jsonl");
  EXPECT_TRUE(jobs.ok()) << jobs.status();
  return jobs.ok() ? *jobs : std::vector<Job>{};
}

TEST_F(AgentTest, SelectsRunsAndReportsWithDecisionIds) {
  auto client = MakeClient(server_->port());
  ASSERT_NE(client, nullptr);
  const std::vector<v1::Strategy> catalogue = StrategiesForHost(2);
  auto created = RegisterStrategies(*client, catalogue);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(*created, 65);
  client::TelemetrySender sender(client->channel(), client->options(), {});
  FakeEngine engine;
  ModelFiles models(models_dir_);
  Agent agent(client.get(), &sender, &engine, &models, TestHost(), catalogue, AgentOptions{});

  const std::vector<Job> jobs = Jobs(
      "{\"id\":\"j1\",\"model\":\"tiny\",\"prompt_tokens\":64,\"output_tokens\":16}\n"
      "{\"id\":\"j2\",\"model\":\"tiny\",\"prompt_tokens\":128,\"output_tokens\":8,\"parallel\":2}\n"
      "{\"id\":\"j3\",\"model\":\"tiny\",\"prompt_tokens\":32,\"output_tokens\":32}\n");
  EXPECT_EQ(agent.Candidates(jobs[0]).size(), 33u);
  const v1::TaskContext context = agent.Context(jobs[1]);
  EXPECT_EQ(context.model().name(), "tiny");
  EXPECT_EQ(context.model().layers(), 2u);
  EXPECT_EQ(context.model().weight_dtype(), "fp16");
  EXPECT_EQ(context.workload().batch_size(), 2u);
  EXPECT_EQ(context.workload().prompt_tokens(), 128u);
  EXPECT_EQ(context.hardware().accelerator(), "Test CPU (2 cores)");

  const std::vector<JobOutcome> outcomes = agent.Run(jobs);
  ASSERT_EQ(outcomes.size(), 3u);
  ASSERT_EQ(engine.calls.size(), 3u);
  std::set<std::string> decisions;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const JobOutcome& o = outcomes[i];
    EXPECT_EQ(o.select_error, "");
    EXPECT_EQ(o.select_source, "server");
    EXPECT_THAT(o.decision_id, HasSubstr("d1-"));
    decisions.insert(o.decision_id);
    EXPECT_EQ(o.metrics.status, v1::RUN_STATUS_OK);
    EXPECT_EQ(o.report_error, "");
    // The engine ran the first-placed strategy's settings on the file of its weight format.
    auto settings = SettingsFromId(o.strategy_id);
    ASSERT_TRUE(settings.ok()) << o.strategy_id;
    EXPECT_TRUE(engine.calls[i].settings == *settings) << o.strategy_id;
    EXPECT_TRUE(settings->weights == WeightFormat::kF16 || settings->weights == WeightFormat::kQ4_0) << o.strategy_id;
    EXPECT_EQ(engine.calls[i].model_path, models.Path("tiny", settings->weights));
  }
  EXPECT_EQ(decisions.size(), 3u);

  ASSERT_TRUE(sender.Flush(absl::Seconds(30)).ok());
  EXPECT_EQ(sender.stats().durable, 3u);
  EXPECT_EQ(sender.stats().rejected, 0u);
  auto info = client->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->runs_stored(), 3u);
  const auto quality = Poll<v1::GetLiveQualityResponse>(
      [&] {
        auto q = client->GetLiveQuality(0, 10);
        return q.ok() ? *q : v1::GetLiveQualityResponse{};
      },
      [](const v1::GetLiveQualityResponse& q) { return q.overall().joined_reports() >= 3; });
  EXPECT_EQ(quality.overall().decisions(), 3u);
  EXPECT_EQ(quality.overall().joined_reports(), 3u);
}

TEST_F(AgentTest, FailedLoadAndMissingModelAreReportedAsFailedRuns) {
  auto client = MakeClient(server_->port());
  ASSERT_NE(client, nullptr);
  const std::vector<v1::Strategy> catalogue = StrategiesForHost(2);
  ASSERT_TRUE(RegisterStrategies(*client, catalogue).ok());
  client::TelemetrySender sender(client->channel(), client->options(), {});
  FakeEngine engine;
  engine.fail_models = {"broken"};
  ModelFiles models(models_dir_);
  Agent agent(client.get(), &sender, &engine, &models, TestHost(), catalogue, AgentOptions{});
  const std::vector<JobOutcome> outcomes =
      agent.Run(Jobs("{\"id\":\"b1\",\"model\":\"broken\",\"prompt_tokens\":8,\"output_tokens\":8}\n"
                     "{\"id\":\"m1\",\"model\":\"absent\",\"prompt_tokens\":8,\"output_tokens\":8}\n"));
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].metrics.status, v1::RUN_STATUS_CRASH);
  EXPECT_THAT(outcomes[0].decision_id, HasSubstr("d1-"));
  // No file at all: nothing to select among, the default cannot run either.
  EXPECT_EQ(outcomes[1].metrics.status, v1::RUN_STATUS_NOT_APPLICABLE);
  EXPECT_THAT(outcomes[1].metrics.message, HasSubstr("absent.F16.gguf is missing"));
  EXPECT_EQ(outcomes[1].strategy_id, kDefaultStrategyId);
  EXPECT_EQ(engine.calls.size(), 1u);
  ASSERT_TRUE(sender.Flush(absl::Seconds(30)).ok());
  EXPECT_EQ(sender.stats().durable, 2u);
  auto info = client->GetModelInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->runs_stored(), 2u);
}

// The server answers a job, then goes away: the same job runs the client's cached answer (no decision id), another
// job the default.
TEST_F(AgentTest, ServerGoneRunsTheCachedAnswerThenTheDefault) {
  auto client = MakeClient(server_->port(), /*max_attempts=*/2, /*deadline_ms=*/5000);
  ASSERT_NE(client, nullptr);
  const std::vector<v1::Strategy> catalogue = StrategiesForHost(2);
  ASSERT_TRUE(RegisterStrategies(*client, catalogue).ok());
  FakeEngine engine;
  ModelFiles models(models_dir_);
  Agent agent(client.get(), /*sender=*/nullptr, &engine, &models, TestHost(), catalogue, AgentOptions{});
  const std::vector<Job> jobs = Jobs(
      "{\"id\":\"c1\",\"model\":\"tiny\",\"prompt_tokens\":64,\"output_tokens\":16}\n"
      "{\"id\":\"c2\",\"model\":\"tiny\",\"prompt_tokens\":64,\"output_tokens\":32}\n");
  const JobOutcome answered = agent.RunJob(jobs[0]);
  ASSERT_EQ(answered.select_source, "server") << answered.select_error;
  ASSERT_THAT(answered.decision_id, HasSubstr("d1-"));

  server_->Shutdown();

  const JobOutcome cached = agent.RunJob(jobs[0]);
  EXPECT_EQ(cached.select_source, "cache");
  EXPECT_EQ(cached.strategy_id, answered.strategy_id);
  EXPECT_EQ(cached.decision_id, "");
  EXPECT_THAT(cached.select_error, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(cached.metrics.status, v1::RUN_STATUS_OK);

  const JobOutcome other = agent.RunJob(jobs[1]);
  EXPECT_EQ(other.select_source, "default");
  EXPECT_EQ(other.strategy_id, kDefaultStrategyId);
  EXPECT_THAT(other.select_error, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(other.metrics.status, v1::RUN_STATUS_OK);
  ASSERT_EQ(engine.calls.size(), 3u);
  EXPECT_TRUE(engine.calls[1].settings == engine.calls[0].settings);
}

TEST(AgentUnreachableTest, RunsTheDefaultAndQueuesReportsBounded) {
  const std::string dir = testing::TempDir("node-agent-down");
  LlamaModel(2, 64, 4, 4, 128).Write(dir + "/tiny.F16.gguf");
  LlamaModel(2, 64, 4, 4, 128, 0, 0, 2).Write(dir + "/tiny.Q4_0.gguf");
  client::ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", ClosedPort());
  options.max_attempts = 2;
  options.deadline_ms = 2000;
  auto client = client::Client::Create(options);
  ASSERT_TRUE(client.ok());
  client::TelemetrySenderOptions sender_options;
  sender_options.capacity_reports = 2;
  sender_options.block_when_full = false;
  client::TelemetrySender sender((*client)->channel(), options, sender_options);
  FakeEngine engine;
  ModelFiles models(dir);
  Agent agent(client->get(), &sender, &engine, &models, TestHost(), StrategiesForHost(2), AgentOptions{});
  const std::vector<JobOutcome> outcomes =
      agent.Run(Jobs("{\"id\":\"u1\",\"model\":\"tiny\",\"prompt_tokens\":8,\"output_tokens\":4}\n"
                     "{\"id\":\"u2\",\"model\":\"tiny\",\"prompt_tokens\":8,\"output_tokens\":4}\n"
                     "{\"id\":\"u3\",\"model\":\"tiny\",\"prompt_tokens\":8,\"output_tokens\":4}\n"));
  ASSERT_EQ(outcomes.size(), 3u);
  ASSERT_EQ(engine.calls.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(outcomes[i].strategy_id, kDefaultStrategyId);
    EXPECT_THAT(outcomes[i].select_error, HasSubstr("UNAVAILABLE"));
    EXPECT_EQ(outcomes[i].select_source, "default");
    EXPECT_EQ(outcomes[i].decision_id, "");
    EXPECT_EQ(outcomes[i].metrics.status, v1::RUN_STATUS_OK);
    EXPECT_TRUE(engine.calls[i].settings == DefaultSettings());
  }
  // Two reports wait in the sender's buffer; the third found it full and was dropped, not waited for.
  EXPECT_EQ(outcomes[0].report_error, "");
  EXPECT_EQ(outcomes[1].report_error, "");
  EXPECT_THAT(outcomes[2].report_error, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_EQ(sender.stats().buffered, 2u);
  EXPECT_EQ(sender.stats().durable, 0u);
}

}  // namespace
}  // namespace accelsel::node
