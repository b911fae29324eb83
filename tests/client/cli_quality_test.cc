// `accelsel quality` against a real server on 127.0.0.1:0: an empty decision log, decisions joined with the runs
// that echo their ids (polled, bounded: the server joins off the request path), bad windows, and the operator role.
#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/cli.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/run_cli.h"
#include "tests/server/test_server.h"

namespace accelsel::client::cli {
namespace {

using accelsel::testing::FreshDir;
using accelsel::testing::MakeContext;
using accelsel::testing::MakeReport;
using accelsel::testing::MakeStrategy;
using accelsel::testing::TestOptions;

constexpr char kNodeToken[] = "node-token-0123456789abc";
constexpr char kOperatorToken[] = "operator-token-0123456789";

class CliQualityTest : public ::testing::Test {
 protected:
  void Start(const std::function<void(server::ServerOptions&)>& adjust = nullptr) {
    dir_ = FreshDir("cli-quality");
    server::ServerOptions o = TestOptions(dir_);
    if (adjust) adjust(o);
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
  }

  // `quality --json` parsed; fails the test on a non-zero exit or a body that is not JSON.
  nlohmann::json QualityJson() {
    Result r = RunCommand({"quality", "--server", address_, "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }

  // Polls `quality --json` until `done` holds or 30 s pass: the server logs and joins off the request path.
  nlohmann::json PollQuality(const std::function<bool(const nlohmann::json&)>& done) {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    nlohmann::json j = QualityJson();
    while (!done(j) && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(20));
      j = QualityJson();
    }
    return j;
  }

  // A client of the server whose catalogue holds `strategy_ids`; null (and a failure) when that fails.
  std::unique_ptr<Client> ClientWithStrategies(const std::vector<std::string>& strategy_ids) {
    ClientOptions options;
    options.target = address_;
    auto client = Client::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    for (const std::string& id : strategy_ids) {
      absl::Status registered = (*client)->RegisterStrategy(MakeStrategy(id)).status();
      EXPECT_TRUE(registered.ok()) << id << ": " << registered;
      if (!registered.ok()) return nullptr;
    }
    return *std::move(client);
  }

  std::string dir_;
  std::unique_ptr<server::Server> server_;
  std::string address_;
};

// The figures every slice carries, as numbers a script can compare.
void ExpectLiveFigures(const nlohmann::json& live, uint64_t joined) {
  ASSERT_TRUE(live.is_object()) << live.dump();
  for (const char* key : {"decisions", "joined_reports", "scored_reports", "failures_seen"}) {
    EXPECT_TRUE(live[key].is_number_unsigned()) << key << " in " << live.dump();
  }
  for (const char* key : {"mape", "coverage80", "follow_rate", "exploration_share"}) {
    EXPECT_TRUE(live[key].is_number()) << key << " in " << live.dump();
  }
  EXPECT_EQ(live["joined_reports"].get<uint64_t>(), joined) << live.dump();
  EXPECT_GE(live["mape"].get<double>(), 0.0);
  EXPECT_LT(live["mape"].get<double>(), 10.0);
  EXPECT_GE(live["coverage80"].get<double>(), 0.0);
  EXPECT_LE(live["coverage80"].get<double>(), 1.0);
  // Every joined run ran the first-placed strategy, and exploration was not allowed.
  EXPECT_DOUBLE_EQ(live["follow_rate"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(live["exploration_share"].get<double>(), 0.0);
}

TEST_F(CliQualityTest, EmptyLogIsZerosNotAnError) {
  Start();
  nlohmann::json j = QualityJson();
  EXPECT_EQ(j["decision_log_enabled"], true) << j.dump();
  EXPECT_EQ(j["window_ms"], 3'600'000) << j.dump();  // the default window, as a number
  EXPECT_EQ(j["overall"]["decisions"], 0) << j.dump();
  EXPECT_EQ(j["overall"]["joined_reports"], 0) << j.dump();
  EXPECT_TRUE(j["versions"].empty()) << j.dump();
  Result human = RunCommand({"quality", "--server", address_, "--window", "7d"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("over the last 168h"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("no decisions logged in the window"), std::string::npos) << human.out;
  // A single server: its own figures (replicas 1, no ids), and no replicas line in the text.
  EXPECT_EQ(j["replicas"], 1) << j.dump();
  EXPECT_TRUE(j["replica_ids"].empty()) << j.dump();
  EXPECT_EQ(human.out.find("replicas"), std::string::npos) << human.out;
}

// The text names the replicas whose figures are in when a cluster answered (replica_ids set), under the heading and
// whatever the figures; a single server (replicas 1) and a server older than the field (replicas 0) add nothing.
TEST(CliQualityFormatTest, NamesTheReplicasOfAClusterAnswerOnly) {
  v1::GetLiveQualityResponse r;
  r.set_window_ms(3'600'000);
  r.set_decision_log_enabled(true);
  r.mutable_overall()->set_decisions(3);
  for (const uint32_t replicas : {0u, 1u}) {
    r.set_replicas(replicas);
    const std::string text = FormatLiveQuality(r);
    EXPECT_EQ(text.find("replicas"), std::string::npos) << replicas << ":\n" << text;
    EXPECT_NE(text.find("3 decisions logged"), std::string::npos) << text;
  }

  r.set_replicas(2);
  r.add_replica_ids("r1");
  r.add_replica_ids("r2");
  std::string text = FormatLiveQuality(r);
  EXPECT_EQ(text.rfind("live quality over the last 1h\nreplicas: 2 (r1, r2)\n3 decisions logged", 0), 0u) << text;

  r.clear_replica_ids();  // a partial answer: one replica of several, its window empty
  r.set_replicas(1);
  r.add_replica_ids("r2");
  r.mutable_overall()->set_decisions(0);
  text = FormatLiveQuality(r);
  EXPECT_EQ(text, "live quality over the last 1h\nreplicas: 1 (r2)\nno decisions logged in the window\n");
}

TEST_F(CliQualityTest, SaysWhenTheDecisionLogIsOff) {
  Start([](server::ServerOptions& o) { o.decision_log.enabled = false; });
  Result r = RunCommand({"quality", "--server", address_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("--decision_log=false"), std::string::npos) << r.out;
  EXPECT_EQ(QualityJson()["decision_log_enabled"], false);
}

TEST_F(CliQualityTest, JoinedRunsShowUpOverallPerVersionAndPerNode) {
  Start();
  std::unique_ptr<Client> client = ClientWithStrategies({"fast", "slow"});
  ASSERT_NE(client, nullptr);

  // Stored runs give the selector estimates with intervals to be scored against.
  TelemetrySender sender(client->channel(), client->options(), TelemetrySenderOptions());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(sender.Send(MakeReport(absl::StrCat("seed-f", i), "fast", 16, 100 + i)).ok());
    ASSERT_TRUE(sender.Send(MakeReport(absl::StrCat("seed-s", i), "slow", 16, 200 + i)).ok());
  }
  ASSERT_TRUE(sender.Flush(absl::Seconds(30)).ok());

  constexpr int kDecisions = 4;
  for (int i = 0; i < kDecisions; ++i) {
    v1::SelectAcceleratorRequest request;
    *request.mutable_context() = MakeContext(16);
    request.set_node_id("node-q");
    auto answer = client->SelectAccelerator(request);
    ASSERT_TRUE(answer.ok()) << answer.status();
    ASSERT_FALSE(answer->decision_id().empty());
    ASSERT_GT(answer->recommendations_size(), 0);
    const std::string first = answer->recommendations(0).strategy().id();
    v1::RunReport run =
        MakeReport(absl::StrCat("joined-", i), first, 16, first == "fast" ? 104 + i : 204 + i, "node-q");
    run.set_decision_id(answer->decision_id());
    ASSERT_TRUE(sender.Send(std::move(run)).ok());
  }
  ASSERT_TRUE(sender.Flush(absl::Seconds(30)).ok());
  sender.Close();

  nlohmann::json j = PollQuality([](const nlohmann::json& q) { return q["overall"]["joined_reports"] == kDecisions; });
  EXPECT_EQ(j["decision_log_enabled"], true);
  EXPECT_EQ(j["overall"]["decisions"], kDecisions) << j.dump(2);
  ExpectLiveFigures(j["overall"], kDecisions);
  ASSERT_EQ(j["versions"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["versions"][0]["version"], 0) << "no model trained: statistics answered";
  ExpectLiveFigures(j["versions"][0]["live"], kDecisions);
  ASSERT_EQ(j["nodes"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["nodes"][0]["node_id"], "node-q");
  EXPECT_EQ(j["nodes"][0]["live"]["joined_reports"], kDecisions);

  Result human = RunCommand({"quality", "--server", address_, "--top_nodes", "5"});
  ASSERT_EQ(human.code, 0) << human.err;
  for (const char* text : {"slice  decisions  joined", "holdout_mape", "v0 = answered from statistics only",
                           "nodes that disagree most", "node-q"}) {
    EXPECT_NE(human.out.find(text), std::string::npos) << text << " in\n" << human.out;
  }
  EXPECT_EQ(human.out.find("none joined"), std::string::npos) << human.out;
}

TEST_F(CliQualityTest, SaysWhenNothingJoinedYet) {
  Start();
  std::unique_ptr<Client> client = ClientWithStrategies({"fast"});
  ASSERT_NE(client, nullptr);
  v1::SelectAcceleratorRequest request;
  *request.mutable_context() = MakeContext(16);
  request.set_node_id("node-q");
  ASSERT_TRUE(client->SelectAccelerator(request).ok());
  EXPECT_EQ(PollQuality([](const nlohmann::json& q) { return q["overall"]["decisions"] == 1; })["overall"]["decisions"],
            1);
  Result r = RunCommand({"quality", "--server", address_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("1 decision logged, none joined with a reported run yet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no node has a scored run yet"), std::string::npos) << r.out;
}

TEST_F(CliQualityTest, BadWindowOrNodeCountIsAUsageErrorNamingTheFlag) {
  Start();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--window", "-5m"}, "--window"},       {{"--window", "31d"}, "--window"},
      {{"--window", "721h"}, "--window"},      {{"--window", "0"}, "--window"},
      {{"--window", "an hour"}, "--window"},   {{"--top_nodes", "1001"}, "--top_nodes"},
      {{"--top_nodes", "many"}, "--top_nodes"}};
  for (const auto& [flags, name] : cases) {
    std::vector<std::string> args = {"quality", "--server", address_};
    args.insert(args.end(), flags.begin(), flags.end());
    Result r = RunCommand(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_EQ(r.err.rfind("accelsel: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  }
  EXPECT_EQ(RunCommand({"quality", "--server", address_, "--window", "30d", "--top_nodes", "1000"}).code, 0);
}

TEST_F(CliQualityTest, NeedsTheOperatorRole) {
  Start([this](server::ServerOptions& o) {
    const std::string path = dir_ + "/tokens";
    std::ofstream(path) << kNodeToken << " node node-a\n" << kOperatorToken << " operator ops-1\n";
    o.access.auth_tokens_file = path;
  });
  Result node = RunCommand({"quality", "--server", address_, "--token", kNodeToken});
  EXPECT_EQ(node.code, 1);
  EXPECT_NE(node.err.find("GetLiveQuality on " + address_ + ": PERMISSION_DENIED"), std::string::npos) << node.err;
  Result op = RunCommand({"quality", "--server", address_, "--token", kOperatorToken});
  EXPECT_EQ(op.code, 0) << op.err;
}

}  // namespace
}  // namespace accelsel::client::cli
