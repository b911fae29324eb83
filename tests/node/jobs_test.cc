// node/jobs: a good file parses with defaults; each bad line is refused naming its line, field and rule.
#include "node/jobs.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace accelsel::node {
namespace {

using ::testing::HasSubstr;

TEST(JobsTest, ParsesLinesWithDefaultsAndSkipsBlankAndCommentLines) {
  auto jobs = ParseJobs(
      "# two jobs\n"
      "{\"id\":\"j1\",\"model\":\"llama-30m\",\"prompt_tokens\":128,\"output_tokens\":32}\n"
      "\n"
      "{\"id\":\"j2\",\"model\":\"llama-120m-gqa\",\"prompt_tokens\":64,\"output_tokens\":64,\"parallel\":4,"
      "\"seed\":7}\r\n",
      "jobs.jsonl");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, "j1");
  EXPECT_EQ((*jobs)[0].model, "llama-30m");
  EXPECT_EQ((*jobs)[0].prompt_tokens, 128u);
  EXPECT_EQ((*jobs)[0].output_tokens, 32u);
  EXPECT_EQ((*jobs)[0].parallel, 1u);
  EXPECT_EQ((*jobs)[0].line, 2);
  EXPECT_EQ((*jobs)[1].parallel, 4u);
  EXPECT_EQ((*jobs)[1].seed, 7u);
  EXPECT_EQ((*jobs)[1].line, 4);
  // The default seed is a stable function of the id: the same prompt on every run.
  auto again = ParseJobs("{\"id\":\"j1\",\"model\":\"m\",\"prompt_tokens\":1,\"output_tokens\":1}", "x");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].seed, (*jobs)[0].seed);
  EXPECT_NE((*jobs)[0].seed, 0u);
}

struct BadLine {
  std::string line;
  std::string expected;  // "jobs.jsonl:2: <field>: <rule>" fragment
};

class JobsBadLineTest : public ::testing::TestWithParam<BadLine> {};

TEST_P(JobsBadLineTest, NamesLineFieldAndRule) {
  const std::string text =
      "{\"id\":\"ok\",\"model\":\"m\",\"prompt_tokens\":8,\"output_tokens\":8}\n" + GetParam().line + "\n";
  auto jobs = ParseJobs(text, "jobs.jsonl");
  ASSERT_FALSE(jobs.ok());
  EXPECT_EQ(jobs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(jobs.status().message()), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    Rules, JobsBadLineTest,
    ::testing::Values(
        BadLine{"{\"id\":\"j\",\"model\":\"m\",\"prompt_tokens\":8", "jobs.jsonl:2: line: is not valid JSON"},
        BadLine{"[1,2]", "jobs.jsonl:2: line: must be a JSON object"},
        BadLine{"{\"model\":\"m\",\"prompt_tokens\":8,\"output_tokens\":8}", "jobs.jsonl:2: id: required"},
        BadLine{"{\"id\":\"a b\",\"model\":\"m\",\"prompt_tokens\":8,\"output_tokens\":8}",
                "jobs.jsonl:2: id: must use only"},
        BadLine{"{\"id\":\"ok\",\"model\":\"m\",\"prompt_tokens\":8,\"output_tokens\":8}",
                "jobs.jsonl:2: id: \"ok\" repeats an earlier job"},
        BadLine{"{\"id\":\"j\",\"model\":\"../etc\",\"prompt_tokens\":8,\"output_tokens\":8}",
                "jobs.jsonl:2: model: must use only [A-Za-z0-9._-]"},
        BadLine{"{\"id\":\"j\",\"model\":7,\"prompt_tokens\":8,\"output_tokens\":8}",
                "jobs.jsonl:2: model: must be a string"},
        BadLine{"{\"id\":\"j\",\"model\":\"m\",\"output_tokens\":8}", "jobs.jsonl:2: prompt_tokens: required"},
        BadLine{"{\"id\":\"j\",\"model\":\"m\",\"prompt_tokens\":0,\"output_tokens\":8}",
                "jobs.jsonl:2: prompt_tokens: must be an integer from 1 to 4096"},
        BadLine{"{\"id\":\"j\",\"model\":\"m\",\"prompt_tokens\":8.5,\"output_tokens\":8}",
                "jobs.jsonl:2: prompt_tokens: must be an integer"},
        BadLine{"{\"id\":\"j\",\"model\":\"m\",\"prompt_tokens\":8,\"output_tokens\":-3}",
                "jobs.jsonl:2: output_tokens: must be an integer from 1 to 4096"},
        BadLine{"{\"id\":\"j\",\"model\":\"m\",\"prompt_tokens\":8,\"output_tokens\":8,\"parallel\":65}",
                "jobs.jsonl:2: parallel: must be an integer from 1 to 64"},
        BadLine{"{\"id\":\"j\",\"model\":\"m\",\"prompt_tokens\":8,\"output_tokens\":8,\"paralel\":2}",
                "jobs.jsonl:2: paralel: unknown field"}));

TEST(JobsTest, EmptyFileAndMissingFileAreErrors) {
  EXPECT_THAT(std::string(ParseJobs("# nothing\n\n", "e.jsonl").status().message()), HasSubstr("e.jsonl: no jobs"));
  EXPECT_EQ(ReadJobsFile("/nonexistent/jobs.jsonl").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace accelsel::node
