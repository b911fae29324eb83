// The `accelsel` CLI: flag parsing, JSON input errors, and whole commands run in-process against a fake server.
#include "client/cli.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli_args.h"
#include "client/client.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/client/fake_server.h"
#include "tests/client/run_cli.h"

namespace accelsel::client::cli {
namespace {

std::string SourceDir() {
  const char* d = std::getenv("ACCELSEL_SOURCE_DIR");
  return d != nullptr ? d : ".";
}
std::string Example(const std::string& name) { return SourceDir() + "/data/examples/" + name; }

// An error is exactly one line "accelsel: ...".
void ExpectOneErrorLine(const Result& r) {
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.err.rfind("accelsel: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

const std::vector<FlagSpec> kSpecs = {{"server", true, "ADDR", ""},
                                      {"top-k", true, "N", ""},
                                      {"json", false, "", ""},
                                      {"deadline_ms", true, "MS", ""},
                                      {"help", false, "", ""}};

TEST(CliArgsTest, ParsesValuesSwitchesAndPositionals) {
  auto f = ParseFlags({"info", "--server", "h:1", "--top_k=3", "--json", "--deadline-ms=7", "--", "--literal"}, kSpecs);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Get("server"), "h:1");
  EXPECT_EQ(f->Get("top-k"), "3");  // stored under the spec's spelling
  EXPECT_EQ(f->Get("deadline_ms"), "7");
  EXPECT_TRUE(f->Has("json"));
  EXPECT_EQ(f->positional, (std::vector<std::string>{"info", "--literal"}));
  EXPECT_TRUE(ParseFlags({"-h"}, kSpecs)->Has("help"));
}

TEST(CliArgsTest, RejectsBadFlags) {
  auto expect_error = [](std::vector<std::string> args, const std::string& needle) {
    auto f = ParseFlags(args, kSpecs);
    ASSERT_FALSE(f.ok()) << absl::StrJoin(args, " ");
    EXPECT_NE(f.status().message().find(needle), absl::string_view::npos) << f.status();
  };
  expect_error({"--nope"}, "unknown flag --nope");
  expect_error({"--server"}, "needs a value");
  expect_error({"--json=yes"}, "takes no value");
  expect_error({"--server", "a", "--server", "b"}, "given twice");
  expect_error({"-x"}, "unknown flag -x");
}

TEST(CliArgsTest, ObjectivesCandidatesNumbers) {
  EXPECT_EQ(*ParseObjective("ttft"), v1::OBJECTIVE_TTFT);
  EXPECT_EQ(*ParseObjective("cost"), v1::OBJECTIVE_COST);
  EXPECT_FALSE(ParseObjective("latency").ok());
  EXPECT_EQ(*ParseCandidates("vllm, tensorrt-llm"), (std::vector<std::string>{"vllm", "tensorrt-llm"}));
  EXPECT_FALSE(ParseCandidates("vllm,,x").ok());
  EXPECT_FALSE(ParseCandidates("vllm,vllm").ok());
  EXPECT_EQ(*ParseUint("--top-k", "12"), 12u);
  EXPECT_FALSE(ParseUint("--top-k", "-1").ok());
  EXPECT_FALSE(ParseUint("--top-k", "3x").ok());
}

TEST(CliArgsTest, ServerAndTokenFromEnvironment) {
  setenv("ACCELSEL_SERVER", "env-host:9", 1);
  setenv("ACCELSEL_TOKEN", "env-token", 1);
  auto from_env = ClientOptionsFromFlags(*ParseFlags({}, CommonFlags()));
  auto from_flags = ClientOptionsFromFlags(*ParseFlags({"--server", "flag-host:1", "--token", "t2"}, CommonFlags()));
  unsetenv("ACCELSEL_SERVER");
  unsetenv("ACCELSEL_TOKEN");
  auto defaults = ClientOptionsFromFlags(*ParseFlags({}, CommonFlags()));
  ASSERT_TRUE(from_env.ok() && from_flags.ok() && defaults.ok());
  EXPECT_EQ(from_env->target, "env-host:9");
  EXPECT_EQ(from_env->bearer_token, "env-token");
  EXPECT_EQ(from_flags->target, "flag-host:1");
  EXPECT_EQ(from_flags->bearer_token, "t2");
  EXPECT_EQ(defaults->target, "127.0.0.1:50051");
  EXPECT_EQ(defaults->deadline_ms, 5000);
  EXPECT_FALSE(ClientOptionsFromFlags(*ParseFlags({"--deadline_ms", "0"}, CommonFlags())).ok());
  EXPECT_FALSE(ClientOptionsFromFlags(*ParseFlags({"--tls_ca", "/nonexistent.pem"}, CommonFlags())).ok());
}

TEST(CliJsonTest, ExampleContextsParse) {
  for (const char* name : {"llama3-8b_h100x1_io512_b16.json", "llama2-70b_a100x4_io1024_b16.json",
                           "mixtral-8x7b_mi300x1_io256_b32.json"}) {
    auto ctx = ReadTaskContextFile(Example(name));
    ASSERT_TRUE(ctx.ok()) << name << ": " << ctx.status();
    EXPECT_FALSE(ctx->model().name().empty());
    EXPECT_GT(ctx->model().layers(), 0u);
    EXPECT_GT(ctx->hardware().count(), 0u);
    EXPECT_GT(ctx->hardware().memory_gb(), 0);
    EXPECT_GT(ctx->workload().batch_size(), 0u);
    EXPECT_EQ(ctx->workload().prompt_tokens(), ctx->workload().output_tokens());
  }
  auto reports = ReadRunReportsJsonl(Example("reports.jsonl"));
  ASSERT_TRUE(reports.ok()) << reports.status();
  ASSERT_EQ(reports->size(), 4u);
  EXPECT_LT((*reports)[3].metrics().e2e_latency_ms(), 0) << "the last example report is the invalid one";
}

TEST(CliJsonTest, ContextParseErrorsSayWhat) {
  EXPECT_FALSE(ParseTaskContextJson("").ok());
  EXPECT_FALSE(ParseTaskContextJson("{\"model\": ").ok());
  auto unknown = ParseTaskContextJson(R"({"model": {"nmae": "x"}})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("nmae"), absl::string_view::npos) << unknown.status();
  auto wrong_type = ParseTaskContextJson(R"({"workload": {"batchSize": "many"}})");
  EXPECT_FALSE(wrong_type.ok());
  auto negative = ParseTaskContextJson(R"({"workload": {"batchSize": -3}})");
  EXPECT_FALSE(negative.ok()) << "uint32 field must not take a negative number";
  // Both the JSON names and the proto names are accepted.
  auto both = ParseTaskContextJson(R"({"workload": {"batch_size": 4, "promptTokens": 8}})");
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->workload().batch_size(), 4u);
  EXPECT_EQ(both->workload().prompt_tokens(), 8u);
}

TEST(CliJsonTest, ReportsJsonlErrorNamesLine) {
  const char* t = std::getenv("ACCELSEL_TEST_TMPDIR");
  const std::string path = absl::StrCat(t != nullptr ? t : "/tmp", "/cli_bad_", getpid(), ".jsonl");
  std::ofstream(path) << "{\"runId\": \"a\"}\n\n{\"runId\": 5, \"bogus\": 1}\n";
  auto r = ReadRunReportsJsonl(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(":3:"), absl::string_view::npos) << r.status();
}

TEST(CliTest, HelpListsEveryCommandAndFlag) {
  Result top = RunCommand({"--help"});
  EXPECT_EQ(top.code, 0);
  for (const char* cmd : {"select", "report", "import", "strategies", "model", "nodes", "quality", "eval"}) {
    EXPECT_NE(top.out.find(absl::StrCat("  ", cmd, " ")), std::string::npos) << cmd;
  }
  EXPECT_NE(top.out.find("  --version "), std::string::npos);
  Result select = RunCommand({"select", "--help"});
  EXPECT_EQ(select.code, 0);
  for (const char* flag : {"--context", "--candidates", "--objective", "--top-k", "--explore", "--exclude-lossy",
                           "--json", "--server", "--token", "--tls_ca", "--deadline_ms"}) {
    EXPECT_NE(select.out.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(RunCommand({"import", "--help"}).out.find("--llm-inference-bench"), std::string::npos);
  EXPECT_EQ(RunCommand({}).code, 2);
}

TEST(CliTest, UsageErrorsExitTwoWithOneLine) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"frobnicate"},
                                             {"select"},
                                             {"select", "--context", "x.json", "--objective", "speed"},
                                             {"select", "--context", "x.json", "--top-k", "1000"},
                                             {"model"},
                                             {"model", "pin"},
                                             {"model", "explode"},
                                             {"strategies"},
                                             {"report"},
                                             {"quality", "extra"},
                                             {"admin"},
                                             {"admin", "backup"},
                                             {"admin", "restore", "x"},
                                             {"admin", "backup", "a", "b"},
                                             {"quality", "--window", "soon"},
                                             {"quality", "--top_nodes", "-1"},
                                             {"select", "--context"}}) {
    Result r = RunCommand(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    ExpectOneErrorLine(r);
  }
}

TEST(CliTest, SelectPrintsTableAndJson) {
  testing::FakeServer server;
  Result r =
      RunCommand({"select", "--server", server.address(), "--context", Example("llama3-8b_h100x1_io512_b16.json"),
                  "--candidates", "tensorrt-llm,vllm,llama.cpp", "--objective", "ttft", "--top-k", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  const v1::SelectAcceleratorRequest sent = server.service().last_select();
  EXPECT_EQ(sent.context().model().name(), "meta-llama/Meta-Llama-3-8B");
  EXPECT_EQ(sent.objective(), v1::OBJECTIVE_TTFT);
  EXPECT_EQ(sent.top_k(), 3u);
  EXPECT_EQ(sent.candidate_ids_size(), 3);
  EXPECT_FALSE(sent.allow_exploration());
  EXPECT_FALSE(sent.constraints().exclude_lossy());

  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u) << r.out;  // summary, header, three rows
  EXPECT_NE(lines[0].find("decision dec-test-1"), std::string::npos);
  EXPECT_EQ(lines[1].rfind("rank  strategy", 0), 0u) << lines[1];
  for (const char* col : {"expected", "interval", "layer", "evidence", "meets"}) {
    EXPECT_NE(lines[1].find(col), std::string::npos) << col;
  }
  // Columns line up: every row has the strategy column where the header has it.
  const size_t strategy_col = lines[1].find("strategy");
  EXPECT_EQ(lines[2].find("tensorrt-llm"), strategy_col);
  EXPECT_EQ(lines[3].find("vllm"), strategy_col);
  EXPECT_NE(lines[2].find("1000.5"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("900.0-1100.0"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("observed"), std::string::npos);
  EXPECT_NE(lines[3].find("no (max_latency_ms)"), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("unknown"), std::string::npos) << lines[4];

  Result j =
      RunCommand({"select", "--server", server.address(), "--context", Example("llama3-8b_h100x1_io512_b16.json"),
                  "--candidates", "vllm,llama.cpp", "--explore", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_TRUE(server.service().last_select().allow_exploration());
  v1::SelectAcceleratorResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(j.out, &parsed).ok()) << j.out;
  ASSERT_EQ(parsed.recommendations_size(), 2);
  EXPECT_EQ(parsed.recommendations(0).strategy().id(), "vllm");
  EXPECT_EQ(parsed.decision_id(), "dec-test-1");
}

TEST(CliTest, SelectExcludeLossySendsTheConstraint) {
  testing::FakeServer server;
  for (const char* flag : {"--exclude-lossy", "--exclude_lossy"}) {
    Result r = RunCommand(
        {"select", "--server", server.address(), "--context", Example("llama3-8b_h100x1_io512_b16.json"), flag});
    ASSERT_EQ(r.code, 0) << flag << ": " << r.err;
    EXPECT_TRUE(server.service().last_select().constraints().exclude_lossy()) << flag;
  }
  Result valued = RunCommand({"select", "--server", server.address(), "--context",
                              Example("llama3-8b_h100x1_io512_b16.json"), "--exclude-lossy=yes"});
  EXPECT_EQ(valued.code, 2) << valued.err;
}

TEST(CliTest, ServerErrorsExitOneWithOneLine) {
  testing::FakeServer server;
  server.service().FailNextCalls(1, grpc::StatusCode::INVALID_ARGUMENT);
  Result r =
      RunCommand({"select", "--server", server.address(), "--context", Example("llama3-8b_h100x1_io512_b16.json")});
  EXPECT_EQ(r.code, 1);
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("INVALID_ARGUMENT"), std::string::npos) << r.err;

  Result missing = RunCommand({"select", "--server", server.address(), "--context", "/nonexistent/ctx.json"});
  EXPECT_EQ(missing.code, 1);
  ExpectOneErrorLine(missing);

  std::string dead;
  {
    testing::FakeServer gone;
    dead = gone.address();
  }
  // A deadline the default retries (3 backoffs of at most 0.1 + 0.2 + 0.4 s, +20 %) fit in: the last attempt's
  // UNAVAILABLE is the answer. A shorter one ends DEADLINE_EXCEEDED while gRPC waits to retry.
  Result down = RunCommand({"model", "info", "--server", dead, "--deadline_ms", "3000"});
  EXPECT_EQ(down.code, 1);
  ExpectOneErrorLine(down);
  EXPECT_NE(down.err.find("UNAVAILABLE"), std::string::npos) << down.err;
}

TEST(CliTest, ReportCountsStoredDuplicateRejected) {
  testing::FakeServer server;
  Result first = RunCommand({"report", "--server", server.address(), "--jsonl", Example("reports.jsonl")});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_NE(first.out.find("stored 3, duplicate 0, rejected 1"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("rejected example-node-a-0004: metrics.e2e_latency_ms"), std::string::npos) << first.out;
  Result again = RunCommand({"report", "--server", server.address(), "--jsonl", Example("reports.jsonl"), "--json"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("\"duplicate\": 3"), std::string::npos) << again.out;
  EXPECT_EQ(server.service().stored().size(), 3u);
}

TEST(CliTest, ImportRegistersStrategiesAndStreamsRuns) {
  testing::FakeServer server;
  server.service().set_break_after_acks(3);  // the import must survive broken streams too
  const std::string csv = SourceDir() + "/tests/fixtures/llm_bench_small.csv";
  Result r = RunCommand({"import", "--server", server.address(), "--llm-inference-bench", csv, "--descriptors",
                         SourceDir() + "/data/descriptors"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("read 13 rows: 10 runs (1 identical rows folded, 2 malformed rows skipped)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"Intel PVC GPU\" -> \"Intel Max 1550 GPU\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("strategies: 6 registered (6 new)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stored 10, duplicate 0, rejected 0"), std::string::npos) << r.out;
  EXPECT_EQ(server.service().catalogue().size(), 6u);
  EXPECT_EQ(server.service().stored().size(), 10u);

  // Re-import: same run ids, all duplicates, nothing new.
  Result again = RunCommand({"import", "--server", server.address(), "--llm-inference-bench", csv});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("stored 0, duplicate 10, rejected 0"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("(0 new)"), std::string::npos) << again.out;

  Result list = RunCommand({"strategies", "list", "--server", server.address()});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_NE(list.out.find("engine=tensorrt-llm"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("6 strategies"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find("(lossy)"), std::string::npos) << list.out;
}

// Progress lines go to stderr only when enabled (a terminal, or ACCELSEL_PROGRESS=1); stdout never changes.
TEST(CliTest, ImportAndRetrainShowProgressOnStderrOnlyWhenEnabled) {
  testing::FakeServer server;
  const std::string csv = SourceDir() + "/tests/fixtures/llm_bench_small.csv";
  const std::vector<std::string> import = {"import", "--server", server.address(), "--llm-inference-bench",
                                           csv,      "--json"};
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "1", 1), 0);
  Result on = RunCommand(import);
  Result retrain = RunCommand({"model", "retrain", "--server", server.address()});
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "0", 1), 0);
  ASSERT_EQ(on.code, 0) << on.err;
  ASSERT_FALSE(on.err.empty());
  EXPECT_EQ(on.err.back(), '\n') << on.err;
  const std::string last = on.err.substr(on.err.rfind('\r') + 1);
  EXPECT_EQ(last.rfind("import: 10/10 (100%) ", 0), 0u) << on.err;
  EXPECT_NE(last.find(", done in 00:0"), std::string::npos) << on.err;
  EXPECT_EQ(on.out.find('\r'), std::string::npos) << on.out;
  EXPECT_EQ(on.out.rfind("{", 0), 0u) << on.out;  // --json on stdout, as before
  EXPECT_NE(on.out.find("\"stored\": 10"), std::string::npos) << on.out;
  ASSERT_EQ(retrain.code, 0) << retrain.err;
  EXPECT_NE(retrain.err.find("\rretrain: done in 00:0"), std::string::npos) << retrain.err;
  EXPECT_EQ(retrain.out.find('\r'), std::string::npos) << retrain.out;

  Result off = RunCommand(import);
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_EQ(off.err, "");
  EXPECT_NE(off.out.find("\"duplicate\": 10"), std::string::npos) << off.out;
}

// A failed command ends its progress line without claiming the work was done; the error follows on its own line.
TEST(CliTest, FailedImportAndRetrainEndProgressAsFailed) {
  testing::FakeServer server;
  server.service().set_hold_acks(true);  // nothing is acknowledged: the flush runs out of time
  const std::string csv = SourceDir() + "/tests/fixtures/llm_bench_small.csv";
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "1", 1), 0);
  Result import =
      RunCommand({"import", "--server", server.address(), "--llm-inference-bench", csv, "--timeout_s", "1"});
  server.service().set_hold_acks(false);
  server.service().FailNextCalls(1, grpc::StatusCode::FAILED_PRECONDITION);
  Result retrain = RunCommand({"model", "retrain", "--server", server.address()});
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "0", 1), 0);

  EXPECT_NE(import.code, 0) << import.out;
  EXPECT_EQ(import.err.find("done in"), std::string::npos) << import.err;
  const size_t failed = import.err.find(", failed after 00:0");
  ASSERT_NE(failed, std::string::npos) << import.err;
  EXPECT_EQ(import.err.rfind("\rimport: ", failed), import.err.rfind('\r', failed)) << import.err;
  EXPECT_EQ(import.err.find("accelsel: ", failed), import.err.find('\n', failed) + 1) << import.err;

  EXPECT_NE(retrain.code, 0) << retrain.out;
  EXPECT_EQ(retrain.err.find("done in"), std::string::npos) << retrain.err;
  const size_t retrain_failed = retrain.err.find("\rretrain: failed after 00:0");
  ASSERT_NE(retrain_failed, std::string::npos) << retrain.err;
  EXPECT_EQ(retrain.err.find("accelsel: ", retrain_failed), retrain.err.find('\n', retrain_failed) + 1) << retrain.err;
}

TEST(CliTest, StrategiesListMarksLossyComponents) {
  testing::FakeServer server;
  ClientOptions options;
  options.target = server.address();
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  v1::Strategy s;
  s.set_id("llama.cpp:q4_0:kv=q8_0");
  auto* engine = s.add_components();
  engine->set_method("engine");
  engine->set_value("llama.cpp");
  auto* weights = s.add_components();
  weights->set_method("weights");
  weights->set_value("q4_0");
  weights->set_lossy(true);
  ASSERT_TRUE((*client)->RegisterStrategy(s).ok());

  Result list = RunCommand({"strategies", "list", "--server", server.address()});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_NE(list.out.find("engine=llama.cpp,weights=q4_0 (lossy)"), std::string::npos) << list.out;
  Result json = RunCommand({"strategies", "list", "--server", server.address(), "--json"});
  ASSERT_EQ(json.code, 0) << json.err;
  v1::ListStrategiesResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &parsed).ok()) << json.out;
  ASSERT_EQ(parsed.strategies_size(), 1);
  EXPECT_FALSE(parsed.strategies(0).components(0).lossy());
  EXPECT_TRUE(parsed.strategies(0).components(1).lossy());
}

TEST(CliTest, ModelAdminCommands) {
  testing::FakeServer server;
  Result pin = RunCommand({"model", "pin", "4", "--server", server.address()});
  ASSERT_EQ(pin.code, 0) << pin.err;
  EXPECT_NE(pin.out.find("serving version 4 (pinned)"), std::string::npos) << pin.out;
  Result back = RunCommand({"model", "rollback", "--server", server.address(), "--json"});
  ASSERT_EQ(back.code, 0) << back.err;
  EXPECT_NE(back.out.find("\"serving_version\": 3"), std::string::npos) << back.out;
  Result info = RunCommand({"model", "info", "--server", server.address()});
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("serving version  3"), std::string::npos) << info.out;
  Result retrain = RunCommand({"model", "retrain", "--server", server.address()});
  ASSERT_EQ(retrain.code, 0) << retrain.err;
  EXPECT_NE(retrain.out.find("version"), std::string::npos);
  EXPECT_NE(retrain.out.find("off-policy evaluation: none"), std::string::npos) << retrain.out;
}

TEST(CliTest, ModelInfoAndRetrainShowOffPolicyFigures) {
  testing::FakeServer server;
  v1::OffPolicyEvaluation ope;
  ope.set_decisions(640);
  ope.set_matched(410);
  ope.set_effective_sample_size(312.5);
  ope.mutable_doubly_robust()->set_value(-0.12);
  ope.mutable_doubly_robust()->set_low(-0.2);
  ope.mutable_doubly_robust()->set_high(-0.04);
  ope.mutable_baseline_doubly_robust()->set_value(-0.18);
  ope.mutable_doubly_robust_difference()->set_value(0.06);
  ope.mutable_doubly_robust_difference()->set_low(0.01);
  ope.mutable_doubly_robust_difference()->set_high(0.11);
  ope.set_used_for_promotion(true);
  server.service().set_off_policy(ope);

  for (const char* action : {"info", "retrain"}) {
    Result r = RunCommand({"model", action, "--server", server.address()});
    ASSERT_EQ(r.code, 0) << action << ": " << r.err;
    EXPECT_NE(r.out.find("off-policy evaluation on logged decisions"), std::string::npos) << r.out;
    std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
    auto header = std::find_if(lines.begin(), lines.end(),
                               [](const std::string& l) { return l.rfind("version  decisions", 0) == 0; });
    ASSERT_NE(header, lines.end()) << r.out;
    ASSERT_NE(header + 1, lines.end()) << r.out;
    for (const char* cell :
         {"640", "410", "312.5", "-0.120 [-0.200, -0.040]", "-0.180 [0.000, 0.000]", "0.060 [0.010, 0.110]", "yes"}) {
      EXPECT_NE(header[1].find(cell), std::string::npos) << cell << " in " << header[1];
    }
    Result j = RunCommand({"model", action, "--server", server.address(), "--json"});
    ASSERT_EQ(j.code, 0) << j.err;
    EXPECT_NE(j.out.find("\"effective_sample_size\": 312.5"), std::string::npos) << j.out;
    EXPECT_NE(j.out.find("\"used_for_promotion\": true"), std::string::npos) << j.out;
  }
}

TEST(CliJsonTest, JsonKeepsProtoNamesAndNumbers) {
  v1::GetLiveQualityResponse r;
  r.set_window_ms(3'600'000);
  r.mutable_overall()->set_joined_reports(uint64_t{1} << 40);
  r.mutable_overall()->set_mape(0.25);
  r.add_versions()->set_version(7);
  r.add_nodes()->set_node_id("n1");
  const std::string text = ToJson(r);
  EXPECT_NE(text.find("\"window_ms\": 3600000"), std::string::npos) << text;
  EXPECT_NE(text.find("\"joined_reports\": 1099511627776"), std::string::npos) << text;
  EXPECT_NE(text.find("\"mape\": 0.25"), std::string::npos) << text;
  EXPECT_NE(text.find("\"version\": 7"), std::string::npos) << text;            // inside a repeated message
  EXPECT_NE(text.find("\"exploration_share\": 0"), std::string::npos) << text;  // defaults included
  EXPECT_NE(text.find("\"node_id\": \"n1\""), std::string::npos) << text;
  v1::GetLiveQualityResponse back;  // still the JSON mapping: the proto parser reads it back
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text, &back).ok()) << text;
  EXPECT_EQ(back.overall().joined_reports(), uint64_t{1} << 40);
}

TEST(CliArgsTest, DurationsInAbslSyntaxOrDays) {
  EXPECT_EQ(*ParseDuration("--window", "90s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("--window", "1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("--window", "7d"), absl::Hours(168));
  EXPECT_EQ(*ParseDuration("--window", "-5m"), absl::Minutes(-5));  // a duration; its range is the command's check
  for (const char* bad : {"", "5", "d", "1.5d", "-1d", "7 d", "soon"}) {
    auto d = ParseDuration("--window", bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(d.status().message().find("--window"), absl::string_view::npos) << d.status();
  }
}

}  // namespace
}  // namespace accelsel::client::cli
