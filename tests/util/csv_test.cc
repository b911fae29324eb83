// The one CSV reader on small inline fixtures: both quote styles, '?' missing, comments, blank lines, bad input
// answered with a Status naming the line (never a crash, also on random garbage), and table-cell numbers.
#include "util/csv.h"

#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/test_util/random_edits.h"

namespace accelsel::util {
namespace {

using testing_util::Mutate;

TEST(CsvTest, QuotesCommentsBlankLinesAndMissing) {
  const char* text =
      "\xEF\xBB\xBF# a comment before the header\n"
      "Hardware,\"Num, of HW\",Framework,Latency\r\n"
      "\n"
      "\"Nvidia H100 GPU\",1,'vLLM',0.5\n"
      "'AMD ''MI300X''',2,\"Tensor\"\"RT\",?\n"
      "# trailing comment\n"
      "plain , 4 ,llama.cpp, 1e-1\n";
  auto t = ParseCsv(text);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->header.size(), 4u);
  EXPECT_EQ(t->header[1], "Num, of HW");
  ASSERT_EQ(t->rows.size(), 3u);
  EXPECT_EQ(t->rows[0][0], "Nvidia H100 GPU");
  EXPECT_EQ(t->rows[0][2], "vLLM");
  EXPECT_EQ(t->rows[1][0], "AMD 'MI300X'");
  EXPECT_EQ(t->rows[1][2], "Tensor\"RT");
  EXPECT_EQ(t->rows[1][3], "?");
  EXPECT_EQ(t->rows[2][0], "plain");
  EXPECT_EQ(t->rows[2][1], "4");
  EXPECT_EQ(t->Column("framework"), 2);
  EXPECT_EQ(t->Column("nope"), -1);
}

TEST(CsvTest, QuotedValueMaySpanLines) {
  auto t = ParseCsv("a,b\n\"line1\nline2\",2\n");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->rows.size(), 1u);
  EXPECT_EQ(t->rows[0][0], "line1\nline2");
}

TEST(CsvTest, BadInputIsAStatus) {
  EXPECT_FALSE(ParseCsv("").ok());
  EXPECT_FALSE(ParseCsv("a,b\n1,2,3\n").ok());
  EXPECT_FALSE(ParseCsv("a,b\n\"unterminated,2\n").ok());
  EXPECT_FALSE(ParseCsv("a,b\n\"x\"y,2\n").ok());
  auto status = ParseCsv("a,b\n1,2\n3\n").status();
  EXPECT_NE(status.message().find("line 3"), std::string::npos) << status;
}

TEST(CsvTest, RecordReaderGoesOnPastABadRecord) {
  // A stray quote on line 6 is that line's error; the reader resumes on line 7 instead of eating the rest.
  CsvRecordReader reader(
      "\xEF\xBB\xBF"
      "a,b\n\n\"p\nq\",4\n# note\n \"x,1\n2,3");
  int line = 0;
  absl::StatusOr<std::vector<std::string>> fields;
  std::vector<std::pair<int, std::string>> seen;
  while (reader.Next(&line, &fields)) {
    seen.emplace_back(line, fields.ok() ? absl::StrJoin(*fields, "|") : std::string(fields.status().message()));
  }
  EXPECT_EQ(seen, (std::vector<std::pair<int, std::string>>{
                      {1, "a|b"}, {3, "p\nq|4"}, {6, "line 6: unterminated quoted value"}, {7, "2|3"}}));
}

TEST(CsvTest, ParseNumberRejectsMissingMarkersAndGarbage) {
  double v = 0;
  EXPECT_TRUE(ParseNumber(std::string(" 4.5 "), &v));
  EXPECT_DOUBLE_EQ(v, 4.5);
  EXPECT_FALSE(ParseNumber(std::string("?"), &v));
  EXPECT_FALSE(ParseNumber(std::string(""), &v));
  EXPECT_FALSE(ParseNumber(std::string("12abc"), &v));
  EXPECT_FALSE(ParseNumber(std::string("nan"), &v));
}

TEST(CsvTest, RandomEditsGiveATableOrAnInvalidArgument) {
  std::mt19937_64 rng(42);
  int refused = 0;
  for (int i = 0; i < 3000; ++i) {
    auto t = ParseCsv(Mutate("h1,h2\n\"a\",'b'\n1,2\n", &rng));
    if (t.ok()) {
      for (const auto& row : t->rows) EXPECT_EQ(row.size(), t->header.size());
    } else {
      ++refused;
      EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
      EXPECT_FALSE(t.status().message().empty());
    }
  }
  EXPECT_GT(refused, 0);  // the edits do break some files
}

}  // namespace
}  // namespace accelsel::util
