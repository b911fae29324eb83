// Client::Select's local fallback (client/README.md, "Local fallback of select"): a server answer is kept per request;
// when the server cannot answer (UNAVAILABLE, DEADLINE_EXCEEDED) the kept answer comes back with its decision_id
// cleared, else the configured default strategy alone, each flagged by its source; without either the error; any
// other error is never masked; the cache is a bounded LRU. Against a real server on 127.0.0.1:0 over a fresh RocksDB
// folder, and the fake server where a failure must be chosen. Then `accelsel select --fallback-strategy` against an
// address where nothing listens.
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/fake_server.h"
#include "tests/server/test_server.h"

namespace accelsel::client {
namespace {

using ::testing::HasSubstr;

constexpr char kDefault[] = "safe-default";

ClientOptions FastOptions(const std::string& target) {
  ClientOptions o;
  o.target = target;
  o.deadline_ms = 5000;
  o.max_attempts = 2;
  o.initial_backoff_ms = 5;
  o.max_backoff_ms = 20;
  return o;
}

std::unique_ptr<Client> MakeClient(const ClientOptions& options) {
  auto c = Client::Create(options);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// A request over the two registered strategies for the test context at `batch`.
v1::SelectAcceleratorRequest Request(uint32_t batch) {
  v1::SelectAcceleratorRequest r;
  *r.mutable_context() = accelsel::testing::MakeContext(batch);
  r.add_candidate_ids("vllm");
  r.add_candidate_ids("tgi");
  r.set_objective(v1::OBJECTIVE_E2E_LATENCY);
  return r;
}

// An address where nothing listens: a fake server's, after it is gone.
std::string DeadAddress() {
  testing::FakeServer gone;
  return gone.address();
}

class ClientFallbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = server::Server::Start(accelsel::testing::TestOptions(accelsel::testing::FreshDir("client-fallback")));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    auto admin = MakeClient(FastOptions(address_));
    ASSERT_NE(admin, nullptr);
    for (const char* id : {"vllm", "tgi"}) {
      auto r = admin->RegisterStrategy(accelsel::testing::MakeStrategy(id));
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::unique_ptr<server::Server> server_;
  std::string address_;
};

TEST_F(ClientFallbackTest, ServerAnswerThenCacheThenDefault) {
  ClientOptions o = FastOptions(address_);
  o.fallback_strategy = kDefault;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);

  auto first = client->Select(Request(16));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->source, SelectSource::kServer);
  EXPECT_FALSE(first->fallback());
  EXPECT_TRUE(first->error.ok());
  EXPECT_THAT(first->response.decision_id(), HasSubstr("d1-"));
  ASSERT_EQ(first->response.recommendations_size(), 2);

  server_->Shutdown();

  // The same request (exploration and node id do not change the key) answers from the cache, no decision logged.
  v1::SelectAcceleratorRequest again = Request(16);
  again.set_node_id("node-7");
  again.set_allow_exploration(true);
  auto cached = client->Select(again);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->source, SelectSource::kCache);
  EXPECT_TRUE(cached->fallback());
  EXPECT_STREQ(SelectSourceName(cached->source), "cache");
  EXPECT_EQ(cached->error.code(), absl::StatusCode::kUnavailable) << cached->error;
  EXPECT_EQ(cached->response.decision_id(), "");
  v1::SelectAcceleratorResponse expected = first->response;
  expected.clear_decision_id();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(cached->response, expected))
      << cached->response.DebugString();

  // Another request (another batch size) has nothing cached: the default strategy alone.
  auto other = client->Select(Request(32));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->source, SelectSource::kDefault);
  EXPECT_STREQ(SelectSourceName(other->source), "default");
  EXPECT_EQ(other->error.code(), absl::StatusCode::kUnavailable) << other->error;
  ASSERT_EQ(other->response.recommendations_size(), 1);
  const v1::Recommendation& only = other->response.recommendations(0);
  EXPECT_EQ(only.strategy().id(), kDefault);
  EXPECT_EQ(only.rank(), 1u);
  EXPECT_EQ(only.selection_probability(), 1.0);
  EXPECT_EQ(only.evidence_layer(), v1::EVIDENCE_LAYER_UNKNOWN);
  EXPECT_EQ(other->response.decision_id(), "");
  EXPECT_EQ(other->response.objective(), v1::OBJECTIVE_E2E_LATENCY);

  // The plain call never falls back.
  EXPECT_EQ(client->SelectAccelerator(Request(16)).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ClientFallbackTest, WithoutADefaultTheErrorComesBack) {
  auto client = MakeClient(FastOptions(address_));  // no fallback_strategy
  ASSERT_NE(client, nullptr);
  ClientOptions no_cache_options = FastOptions(address_);
  no_cache_options.fallback_cache_size = 0;
  auto no_cache = MakeClient(no_cache_options);
  ASSERT_NE(no_cache, nullptr);
  ASSERT_TRUE(client->Select(Request(16)).ok());
  ASSERT_TRUE(no_cache->Select(Request(16)).ok());

  server_->Shutdown();

  auto cached = client->Select(Request(16));
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->source, SelectSource::kCache);
  auto other = client->Select(Request(32));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnavailable) << other.status();
  // A cache of size 0 keeps nothing.
  auto uncached = no_cache->Select(Request(16));
  EXPECT_EQ(uncached.status().code(), absl::StatusCode::kUnavailable) << uncached.status();

  auto dead = MakeClient(FastOptions(DeadAddress()));
  ASSERT_NE(dead, nullptr);
  EXPECT_EQ(dead->Select(Request(16)).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ClientFallbackTest, InvalidArgumentIsNotMasked) {
  ClientOptions o = FastOptions(address_);
  o.fallback_strategy = kDefault;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  v1::SelectAcceleratorRequest bad = Request(16);
  bad.set_top_k(100000);
  auto r = client->Select(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("top_k"));
}

// Errors that are not "the server cannot answer" come back as they are, even with an answer cached for the request
// and a default configured.
TEST(ClientFallbackFakeTest, OtherErrorsAreNeverMasked) {
  testing::FakeServer server;
  ClientOptions o = FastOptions(server.address());
  o.max_attempts = 1;  // one failure per call, so each FailNextCalls(1, ...) fails exactly one call
  o.fallback_strategy = kDefault;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Select(Request(16)).ok());
  for (grpc::StatusCode code :
       {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::UNAUTHENTICATED,
        grpc::StatusCode::FAILED_PRECONDITION, grpc::StatusCode::INTERNAL}) {
    server.service().FailNextCalls(1, code);
    auto r = client->Select(Request(16));
    ASSERT_FALSE(r.ok()) << code;
    EXPECT_EQ(static_cast<int>(r.status().code()), static_cast<int>(code)) << r.status();
  }
  for (grpc::StatusCode code : {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::RESOURCE_EXHAUSTED}) {
    server.service().FailNextCalls(1, code);
    auto r = client->Select(Request(16));
    ASSERT_TRUE(r.ok()) << code << ": " << r.status();
    EXPECT_EQ(r->source, SelectSource::kCache) << code;
  }
}

TEST(ClientFallbackFakeTest, DeadlineExceededFallsBack) {
  testing::FakeServer server;
  ClientOptions o = FastOptions(server.address());
  o.deadline_ms = 300;
  o.fallback_strategy = kDefault;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Select(Request(16)).ok());
  server.service().set_unary_delay(absl::Seconds(2));
  auto cached = client->Select(Request(16));
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->source, SelectSource::kCache);
  EXPECT_EQ(cached->error.code(), absl::StatusCode::kDeadlineExceeded) << cached->error;
  EXPECT_EQ(cached->response.decision_id(), "");
  auto other = client->Select(Request(32));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->source, SelectSource::kDefault);
  EXPECT_EQ(other->error.code(), absl::StatusCode::kDeadlineExceeded) << other->error;
  server.service().set_unary_delay(absl::ZeroDuration());
}

// Two entries: A and B are kept, A is answered again (most recent), C comes in and B, the least recently used,
// goes.
TEST(ClientFallbackFakeTest, CacheIsABoundedLru) {
  testing::FakeServer server;
  ClientOptions o = FastOptions(server.address());
  o.max_attempts = 1;
  o.fallback_cache_size = 2;
  o.fallback_strategy = kDefault;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  for (uint32_t batch : {1u, 2u, 1u, 3u}) ASSERT_TRUE(client->Select(Request(batch)).ok()) << batch;

  server.service().FailNextCalls(3, grpc::StatusCode::UNAVAILABLE);
  auto a = client->Select(Request(1));
  auto b = client->Select(Request(2));
  auto c = client->Select(Request(3));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->source, SelectSource::kCache);
  EXPECT_EQ(b->source, SelectSource::kDefault);
  EXPECT_EQ(c->source, SelectSource::kCache);
  EXPECT_EQ(server.service().unary_calls(), 7);
}

TEST(ClientFallbackFakeTest, OptionsDefaults) {
  const ClientOptions defaults;
  EXPECT_EQ(defaults.fallback_strategy, "");
  EXPECT_EQ(defaults.fallback_cache_size, 1024u);
  EXPECT_TRUE(IsSelectFallbackCode(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsSelectFallbackCode(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(IsSelectFallbackCode(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(IsSelectFallbackCode(absl::StatusCode::kInvalidArgument));
  EXPECT_STREQ(SelectSourceName(SelectSource::kServer), "server");
}

// ---------------------------------------------------------------------------------------------------------
// accelsel select --fallback-strategy

struct CliResult {
  int code;
  std::string out, err;
};

CliResult RunCliCommand(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = cli::RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

std::vector<std::string> SelectArgs(const std::string& server) {
  return {"select",    "--server",        server, "--model",         "test/model-7b", "--accelerator",
          "Test H100", "--prompt-tokens", "512",  "--output-tokens", "512",           "--batch",
          "16",        "--deadline_ms",   "3000"};
}

TEST(CliFallbackTest, PrintsTheDefaultWhenTheServerIsUnreachable) {
  const std::string dead = DeadAddress();

  // Without the flag: the error, exit 1.
  CliResult plain = RunCliCommand(SelectArgs(dead));
  EXPECT_EQ(plain.code, 1);
  EXPECT_THAT(plain.err, HasSubstr("UNAVAILABLE"));

  std::vector<std::string> args = SelectArgs(dead);
  args.insert(args.end(), {"--fallback-strategy", kDefault});
  CliResult table = RunCliCommand(args);
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_EQ(table.err, "");
  EXPECT_EQ(table.out.rfind("fallback: server unreachable", 0), 0u) << table.out;
  EXPECT_THAT(table.out, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(table.out, HasSubstr(absl::StrCat("strategy ", kDefault)));

  args.push_back("--json");
  args[args.size() - 3] = "--fallback_strategy";  // underscores spell it too
  CliResult json = RunCliCommand(args);
  ASSERT_EQ(json.code, 0) << json.err;
  const nlohmann::json parsed = nlohmann::json::parse(json.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(parsed.is_object()) << json.out;
  EXPECT_EQ(parsed.value("source", ""), "default");
  EXPECT_THAT(parsed.value("fallback_error", ""), HasSubstr("UNAVAILABLE"));
  ASSERT_EQ(parsed["recommendations"].size(), 1u) << json.out;
  EXPECT_EQ(parsed["recommendations"][0]["strategy"].value("id", ""), kDefault);
  EXPECT_EQ(parsed.value("decision_id", "x"), "");

  // An empty id is a usage error.
  std::vector<std::string> empty = SelectArgs(dead);
  empty.insert(empty.end(), {"--fallback-strategy", ""});
  EXPECT_EQ(RunCliCommand(empty).code, 2);

  CliResult help = RunCliCommand({"select", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("--fallback-strategy ID"));
}

// With a server that answers, the flag changes nothing: the plain table and the response's JSON mapping, no source.
TEST(CliFallbackTest, AServerAnswerIsPrintedAsBefore) {
  testing::FakeServer server;
  std::vector<std::string> args = SelectArgs(server.address());
  args.insert(args.end(), {"--fallback-strategy", kDefault});
  CliResult table = RunCliCommand(args);
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, ::testing::Not(HasSubstr("fallback")));
  EXPECT_THAT(table.out, HasSubstr("decision dec-test-1"));
  args.push_back("--json");
  CliResult json = RunCliCommand(args);
  ASSERT_EQ(json.code, 0) << json.err;
  v1::SelectAcceleratorResponse parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &parsed).ok()) << json.out;
  EXPECT_EQ(parsed.decision_id(), "dec-test-1");

  // A refusal is an error with or without the flag.
  server.service().FailNextCalls(1, grpc::StatusCode::INVALID_ARGUMENT);
  args.pop_back();
  CliResult refused = RunCliCommand(args);
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("INVALID_ARGUMENT"));
}

}  // namespace
}  // namespace accelsel::client
