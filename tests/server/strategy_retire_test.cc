// Retiring strategies against the real server (127.0.0.1:0, RocksDB in a temp folder): a retired strategy leaves
// selection and listing, keeps its runs, comes back on unretire, stays retired across a restart, and only an operator
// may retire; the `accelsel strategies retire|unretire` commands drive the same RPCs.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kNodeToken[] = "node-a-token-0123456789";
constexpr char kOperatorToken[] = "operator-token-0123456789";

class StrategyRetireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("retire");
    tokens_ = dir_ + "/tokens";
    std::ofstream(tokens_) << kNodeToken << " node node-a\n" << kOperatorToken << " operator ops-1\n";
    Start();
  }
  void TearDown() override { Stop(); }

  void Start(const std::string& seed_csv = "") {
    auto o = TestOptions(dir_ + "/data");
    o.access.auth_tokens_file = tokens_;
    if (!seed_csv.empty()) {
      const char* src = std::getenv("ACCELSEL_SOURCE_DIR");
      o.seed_csv = absl::StrCat(src != nullptr ? src : ".", "/", seed_csv);
      o.descriptors_dir = absl::StrCat(src != nullptr ? src : ".", "/data/descriptors");
    }
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    conn_ = Connect(server_->port());
  }
  void Stop() {
    if (server_) server_->Shutdown();
    server_.reset();
  }

  static void Authorize(grpc::ClientContext* ctx, const std::string& token) {
    SetDeadline(ctx);
    ctx->AddMetadata("authorization", std::string("Bearer ") + token);
  }

  grpc::Status Register(const v1::Strategy& strategy, v1::RegisterStrategyResponse* resp = nullptr) {
    grpc::ClientContext ctx;
    Authorize(&ctx, kOperatorToken);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = strategy;
    v1::RegisterStrategyResponse local;
    return conn_.selector->RegisterStrategy(&ctx, req, resp ? resp : &local);
  }

  grpc::Status Retire(const std::string& id, bool retire, const std::string& token = kOperatorToken,
                      bool* changed = nullptr) {
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    grpc::Status st;
    if (retire) {
      v1::RetireStrategyRequest req;
      req.set_id(id);
      v1::RetireStrategyResponse resp;
      st = conn_.selector->RetireStrategy(&ctx, req, &resp);
      EXPECT_TRUE(!st.ok() || resp.strategy().retired());
      if (changed) *changed = resp.changed();
    } else {
      v1::UnretireStrategyRequest req;
      req.set_id(id);
      v1::UnretireStrategyResponse resp;
      st = conn_.selector->UnretireStrategy(&ctx, req, &resp);
      EXPECT_TRUE(!st.ok() || !resp.strategy().retired());
      if (changed) *changed = resp.changed();
    }
    return st;
  }

  // Ids listed, each with "(retired)" appended when flagged so.
  std::vector<std::string> Listed(bool include_retired) {
    grpc::ClientContext ctx;
    Authorize(&ctx, kNodeToken);
    v1::ListStrategiesRequest req;
    req.set_include_retired(include_retired);
    v1::ListStrategiesResponse resp;
    EXPECT_TRUE(conn_.selector->ListStrategies(&ctx, req, &resp).ok());
    std::vector<std::string> ids;
    for (const auto& s : resp.strategies()) ids.push_back(s.id() + (s.retired() ? " (retired)" : ""));
    return ids;
  }

  grpc::Status Select(const std::vector<std::string>& candidates, std::vector<std::string>* ranked) {
    grpc::ClientContext ctx;
    Authorize(&ctx, kNodeToken);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(8);
    for (const auto& c : candidates) req.add_candidate_ids(c);
    v1::SelectAcceleratorResponse resp;
    grpc::Status st = conn_.selector->SelectAccelerator(&ctx, req, &resp);
    ranked->clear();
    for (const auto& r : resp.recommendations()) ranked->push_back(r.strategy().id());
    std::sort(ranked->begin(), ranked->end());
    return st;
  }

  std::vector<v1::RunAck> Report(const std::vector<v1::RunReport>& reports) {
    grpc::ClientContext ctx;
    Authorize(&ctx, kNodeToken);
    return ReportAll(*conn_.selector, reports, &ctx);
  }

  // Runs of `strategy` the statistics count in the test context.
  uint64_t ObservedRuns(const std::string& strategy) {
    grpc::ClientContext ctx;
    Authorize(&ctx, kNodeToken);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(8);
    req.add_candidate_ids(strategy);
    v1::SelectAcceleratorResponse resp;
    if (!conn_.selector->SelectAccelerator(&ctx, req, &resp).ok() || resp.recommendations_size() != 1) return 0;
    return resp.recommendations(0).evidence_count();
  }

  int Cli(const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> full = args;
    for (const std::string& a : {std::string("--server"), absl::StrCat("127.0.0.1:", server_->port()),
                                 std::string("--token"), std::string(kOperatorToken)}) {
      full.push_back(a);
    }
    std::ostringstream o, e;
    const int code = client::cli::RunCli(full, o, e);
    *out = o.str() + e.str();
    return code;
  }

  std::string dir_;
  std::string tokens_;
  std::unique_ptr<server::Server> server_;
  Connection conn_;
};

TEST_F(StrategyRetireTest, RetiredStrategyLeavesSelectionAndListingKeepsItsRunsAndComesBack) {
  ASSERT_TRUE(Register(MakeStrategy("sglang")).ok());
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  const auto acks = Report(
      {MakeReport("r-0", "vllm", 8, 100), MakeReport("r-1", "vllm", 8, 110), MakeReport("r-2", "sglang", 8, 120)});
  ASSERT_EQ(acks.size(), 3u);
  ASSERT_EQ(ObservedRuns("vllm"), 2u);

  bool changed = false;
  ASSERT_TRUE(Retire("vllm", true, kOperatorToken, &changed).ok());
  EXPECT_TRUE(changed);
  ASSERT_TRUE(Retire("vllm", true, kOperatorToken, &changed).ok());
  EXPECT_FALSE(changed);  // idempotent

  std::vector<std::string> ranked;
  ASSERT_TRUE(Select({}, &ranked).ok());
  EXPECT_THAT(ranked, ElementsAre("sglang"));
  grpc::Status st = Select({"sglang", "vllm"}, &ranked);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("candidate_ids[1]: strategy \"vllm\" is retired"));
  EXPECT_THAT(Listed(false), ElementsAre("sglang"));
  EXPECT_THAT(Listed(true), ElementsAre("sglang", "vllm (retired)"));

  // Its runs stay stored and counted; a node that ran it before the retirement may still report the run.
  EXPECT_EQ(server_->core().store()->RunCount(), 3u);
  const auto late = Report({MakeReport("r-3", "vllm", 8, 105)});
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].result(), v1::RunAck::RESULT_DURABLE) << late[0].reason();
  // Registering the same definition again does not bring it back.
  v1::RegisterStrategyResponse again;
  ASSERT_TRUE(Register(MakeStrategy("vllm"), &again).ok());
  EXPECT_FALSE(again.created());
  EXPECT_THAT(Listed(false), ElementsAre("sglang"));

  ASSERT_TRUE(Retire("vllm", false, kOperatorToken, &changed).ok());
  EXPECT_TRUE(changed);
  ASSERT_TRUE(Select({}, &ranked).ok());
  EXPECT_THAT(ranked, ElementsAre("sglang", "vllm"));
  EXPECT_THAT(Listed(false), ElementsAre("sglang", "vllm"));
  EXPECT_EQ(ObservedRuns("vllm"), 3u);  // every run, the one reported while retired included
}

TEST_F(StrategyRetireTest, RetirementSurvivesARestart) {
  ASSERT_TRUE(Register(MakeStrategy("sglang")).ok());
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  ASSERT_EQ(Report({MakeReport("r-0", "vllm", 8, 100)}).size(), 1u);
  ASSERT_TRUE(Retire("vllm", true).ok());
  Stop();
  Start();
  EXPECT_THAT(Listed(false), ElementsAre("sglang"));
  EXPECT_THAT(Listed(true), ElementsAre("sglang", "vllm (retired)"));
  std::vector<std::string> ranked;
  ASSERT_TRUE(Select({}, &ranked).ok());
  EXPECT_THAT(ranked, ElementsAre("sglang"));
  EXPECT_EQ(server_->core().store()->RunCount(), 1u);
  ASSERT_TRUE(Retire("vllm", false).ok());
  Stop();
  Start();
  EXPECT_THAT(Listed(false), ElementsAre("sglang", "vllm"));
  EXPECT_EQ(ObservedRuns("vllm"), 1u);
}

// A seed imported into a store that has a catalogue but no runs (a node's catalogue registered first, docs/NODE.md)
// keeps the registered definition of a strategy the table also names, and its rows count for that strategy.
TEST_F(StrategyRetireTest, SeedKeepsARegisteredDefinition) {
  v1::Strategy vllm = MakeStrategy("vllm");
  v1::StrategyComponent* kv = vllm.add_components();
  kv->set_method("kv_cache");
  kv->set_value("paged");
  ASSERT_TRUE(Register(vllm).ok());
  Stop();
  Start("tests/fixtures/llm_bench_small.csv");
  EXPECT_EQ(server_->core().store()->RunCount(), 10u);
  grpc::ClientContext ctx;
  Authorize(&ctx, kNodeToken);
  v1::ListStrategiesResponse resp;
  ASSERT_TRUE(conn_.selector->ListStrategies(&ctx, v1::ListStrategiesRequest(), &resp).ok());
  EXPECT_EQ(resp.strategies_size(), 6);
  bool found = false;
  for (const v1::Strategy& s : resp.strategies()) {
    if (s.id() != "vllm") continue;
    found = true;
    ASSERT_EQ(s.components_size(), 2);
    EXPECT_EQ(s.components(1).value(), "paged");
  }
  EXPECT_TRUE(found);
}

TEST_F(StrategyRetireTest, OnlyOperatorsRetire) {
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  for (const bool retire : {true, false}) {
    const grpc::Status st = Retire("vllm", retire, kNodeToken);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("needs the operator role"));
  }
  EXPECT_THAT(Listed(true), ElementsAre("vllm"));
}

TEST_F(StrategyRetireTest, BadRequestsNameTheFieldAndTheRule) {
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  grpc::Status st = Retire("nope", true);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), HasSubstr("id: unknown strategy \"nope\""));
  st = Retire("not an id", true);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("id: may contain only"));
  // The flag is the server's: a definition cannot arrive retired.
  v1::Strategy flagged = MakeStrategy("other");
  flagged.set_retired(true);
  st = Register(flagged);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("strategy.retired: is set by the server only"));
  // With every strategy retired a select has nothing to rank, and says why.
  ASSERT_TRUE(Retire("vllm", true).ok());
  std::vector<std::string> ranked;
  st = Select({}, &ranked);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("every strategy of the catalogue is retired"));
}

TEST_F(StrategyRetireTest, CliRetiresListsAndUnretires) {
  ASSERT_TRUE(Register(MakeStrategy("sglang")).ok());
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  std::string out;
  ASSERT_EQ(Cli({"strategies", "retire", "vllm"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("strategy vllm is now retired"));
  ASSERT_EQ(Cli({"strategies", "list"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("1 strategies"));
  ASSERT_EQ(Cli({"strategies", "list", "--include-retired"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("vllm    retired"));
  EXPECT_THAT(out, HasSubstr("2 strategies"));
  ASSERT_EQ(Cli({"strategies", "unretire", "vllm"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("strategy vllm is now active"));
  ASSERT_EQ(Cli({"strategies", "unretire", "vllm"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("strategy vllm was already active"));
  EXPECT_EQ(Cli({"strategies", "retire"}, &out), 2) << out;
  EXPECT_EQ(Cli({"strategies", "retire", "nope"}, &out), 1) << out;
  EXPECT_THAT(out, HasSubstr("unknown strategy \"nope\""));
}

}  // namespace
}  // namespace accelsel::testing
