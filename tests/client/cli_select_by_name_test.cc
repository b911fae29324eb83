// `accelsel select` by name: --model, --accelerator, --count, --prompt-tokens, --output-tokens and --batch instead of
// (or over) --context FILE.json. The request they build is checked on the fake server; the line saying which fields
// the server filled, and --json's filled_fields, against the real server with the bundled descriptor tables.
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/client/fake_server.h"
#include "tests/client/run_cli.h"
#include "tests/server/test_server.h"

namespace accelsel::client::cli {
namespace {

using ::testing::HasSubstr;

constexpr char kLlama3[] = "meta-llama/Meta-Llama-3-8B";
constexpr char kH100[] = "Nvidia H100 GPU";

std::string SourceFile(const std::string& relative) {
  const char* d = std::getenv("ACCELSEL_SOURCE_DIR");
  return absl::StrCat(d != nullptr ? d : ".", "/", relative);
}

std::vector<std::string> ByName(const std::string& server) {
  return {"select", "--server",        server, "--model", kLlama3, "--accelerator", kH100, "--prompt-tokens",
          "512",    "--output-tokens", "512",  "--batch", "16"};
}

TEST(CliSelectByNameTest, BuildsTheContextFromNames) {
  testing::FakeServer server;
  Result r = RunCommand(ByName(server.address()));
  ASSERT_EQ(r.code, 0) << r.err;
  const v1::TaskContext sent = server.service().last_select().context();
  EXPECT_EQ(sent.model().name(), kLlama3);
  EXPECT_EQ(sent.model().layers(), 0u) << "descriptors are left to the server";
  EXPECT_EQ(sent.hardware().accelerator(), kH100);
  EXPECT_EQ(sent.hardware().count(), 1u) << "default count";
  EXPECT_EQ(sent.hardware().memory_bandwidth_gbps(), 0);
  EXPECT_EQ(sent.workload().prompt_tokens(), 512u);
  EXPECT_EQ(sent.workload().output_tokens(), 512u);
  EXPECT_EQ(sent.workload().batch_size(), 16u);
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("filled from descriptor tables"))) << "the fake server fills nothing";

  // Underscore spellings, and a count.
  Result u = RunCommand({"select", "--server", server.address(), "--model", kLlama3, "--accelerator", kH100,
                         "--count=4", "--prompt_tokens", "1024", "--output_tokens=128", "--batch", "2"});
  ASSERT_EQ(u.code, 0) << u.err;
  const v1::TaskContext sent_u = server.service().last_select().context();
  EXPECT_EQ(sent_u.hardware().count(), 4u);
  EXPECT_EQ(sent_u.workload().prompt_tokens(), 1024u);
  EXPECT_EQ(sent_u.workload().output_tokens(), 128u);
  EXPECT_EQ(sent_u.workload().batch_size(), 2u);
}

TEST(CliSelectByNameTest, FlagsOverrideTheContextFile) {
  testing::FakeServer server;
  const std::string file = SourceFile("data/examples/llama3-8b_h100x1_io512_b16.json");
  // Same names: the file's descriptors stay; only the workload and count change.
  Result same = RunCommand(
      {"select", "--server", server.address(), "--context", file, "--model", kLlama3, "--batch", "32", "--count", "2"});
  ASSERT_EQ(same.code, 0) << same.err;
  v1::TaskContext sent = server.service().last_select().context();
  EXPECT_EQ(sent.model().layers(), 32u);
  EXPECT_DOUBLE_EQ(sent.hardware().memory_bandwidth_gbps(), 3350);
  EXPECT_EQ(sent.hardware().count(), 2u);
  EXPECT_EQ(sent.workload().batch_size(), 32u);
  EXPECT_EQ(sent.workload().prompt_tokens(), 512u);

  // Another model and accelerator: the file's descriptors of them go (the server fills the named ones'), the
  // file's count and workload stay.
  Result other = RunCommand({"select", "--server", server.address(), "--context", file, "--model",
                             "meta-llama/Llama-2-7b-hf", "--accelerator", "Nvidia A100 GPU"});
  ASSERT_EQ(other.code, 0) << other.err;
  sent = server.service().last_select().context();
  EXPECT_EQ(sent.model().name(), "meta-llama/Llama-2-7b-hf");
  EXPECT_EQ(sent.model().layers(), 0u);
  EXPECT_EQ(sent.model().weight_dtype(), "");
  EXPECT_EQ(sent.hardware().accelerator(), "Nvidia A100 GPU");
  EXPECT_EQ(sent.hardware().memory_bandwidth_gbps(), 0);
  EXPECT_EQ(sent.hardware().count(), 1u);
  EXPECT_EQ(sent.workload().batch_size(), 16u);
}

TEST(CliSelectByNameTest, UsageErrorsNameTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"select"}, "--context"},
      {{"select", "--model", kLlama3}, "--accelerator"},
      {{"select", "--model", kLlama3, "--accelerator", kH100, "--prompt-tokens", "1", "--output-tokens", "1"},
       "--batch"},
      {{"select", "--accelerator", kH100, "--prompt-tokens", "1", "--output-tokens", "1", "--batch", "1"}, "--model"},
      {{"select", "--model", kLlama3, "--accelerator", kH100, "--prompt-tokens", "many", "--output-tokens", "1",
        "--batch", "1"},
       "--prompt-tokens"},
      {{"select", "--model", kLlama3, "--accelerator", kH100, "--prompt-tokens", "1", "--output-tokens", "1", "--batch",
        "0"},
       "--batch"},
      {{"select", "--model", kLlama3, "--accelerator", kH100, "--count", "0", "--prompt-tokens", "1", "--output-tokens",
        "1", "--batch", "1"},
       "--count"},
      {{"select", "--model", kLlama3, "--accelerator", kH100, "--count", "70000", "--prompt-tokens", "1",
        "--output-tokens", "1", "--batch", "1"},
       "--count"},
      {{"select", "--model", kLlama3, "--accelerator", kH100, "--prompt-tokens", "1", "--output-tokens", "4294967296",
        "--batch", "1"},
       "--output-tokens"},
      {{"select", "--model=", "--accelerator", kH100, "--prompt-tokens", "1", "--output-tokens", "1", "--batch", "1"},
       "--model"},
      {{"select", "--context", "/nonexistent/ctx.json", "--batch", "0"}, "--batch"},
  };
  for (const auto& [args, flag] : cases) {
    Result r = RunCommand(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_EQ(r.err.rfind("accelsel: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr(flag)) << absl::StrJoin(args, " ");
  }
}

TEST(CliSelectByNameTest, HelpListsTheNameFlags) {
  Result help = RunCommand({"select", "--help"});
  ASSERT_EQ(help.code, 0);
  for (const char* flag : {"--model", "--accelerator", "--count", "--prompt-tokens", "--output-tokens", "--batch"}) {
    EXPECT_THAT(help.out, HasSubstr(flag));
  }
}

TEST(CliSelectByNameTest, SaysWhichFieldsTheServerFilled) {
  auto o = accelsel::testing::TestOptions(accelsel::testing::FreshDir("cli-select-by-name"));
  o.descriptors_dir = SourceFile("data/descriptors");
  auto server = server::Server::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());
  {
    accelsel::testing::Connection conn = accelsel::testing::Connect((*server)->port());
    grpc::ClientContext ctx;
    accelsel::testing::SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = accelsel::testing::MakeStrategy("vllm");
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }

  Result table = RunCommand(ByName(address));
  ASSERT_EQ(table.code, 0) << table.err;
  std::vector<std::string> lines = absl::StrSplit(table.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << table.out;  // summary, header, one row, the filled line
  EXPECT_EQ(lines[3],
            "filled from descriptor tables: model.family, model.parameters_b, model.layers, model.hidden_size, "
            "model.attention_heads, model.kv_heads, model.weight_dtype, hardware.memory_gb, "
            "hardware.memory_bandwidth_gbps, hardware.peak_tflops, hardware.interconnect");

  Result json = RunCommand([&] {
    auto args = ByName(address);
    args.push_back("--json");
    return args;
  }());
  ASSERT_EQ(json.code, 0) << json.err;
  v1::SelectAcceleratorResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &parsed).ok()) << json.out;
  EXPECT_THAT(json.out, HasSubstr("\"filled_fields\""));
  EXPECT_THAT(parsed.filled_fields(), ::testing::Contains("context.hardware.memory_bandwidth_gbps"));

  // A complete context file: nothing to fill, no line.
  Result file = RunCommand(
      {"select", "--server", address, "--context", SourceFile("data/examples/llama3-8b_h100x1_io512_b16.json")});
  ASSERT_EQ(file.code, 0) << file.err;
  EXPECT_THAT(file.out, ::testing::Not(HasSubstr("filled from descriptor tables"))) << file.out;
  (*server)->Shutdown();
}

}  // namespace
}  // namespace accelsel::client::cli
