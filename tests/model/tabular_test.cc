// CSV and ARFF readers on small inline fixtures: both quote styles, '?' missing, comments, blank lines, and
// bad input answered with a Status (never a crash), including random garbage.
#include "model/eval/tabular.h"

#include <random>

#include "gtest/gtest.h"

namespace accelsel::model::eval {
namespace {

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

TEST(ArffTest, BothQuoteStylesMissingValuesAndComments) {
  const char* text =
      "% ASlib-like file\n"
      "@RELATION 'runs of x'\n"
      "\n"
      "@ATTRIBUTE instance_id STRING\n"
      "@ATTRIBUTE 'algo name' STRING\n"
      "@attribute \"runtime\" numeric\n"
      "@ATTRIBUTE runstatus {ok , timeout , 'mem out'}\n"
      "@DATA\n"
      "% a comment among the rows\n"
      "i1,'solver, v1',1.5,ok\n"
      "\"i2\",\"solver \\\"2\\\"\",?,timeout\n"
      "\n"
      "i3,'it''s',2,'mem out'\n";
  auto t = ParseArff(text);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->relation, "'runs of x'");
  ASSERT_EQ(t->attributes.size(), 4u);
  EXPECT_EQ(t->attributes[1].name, "algo name");
  EXPECT_EQ(t->attributes[2].type, ArffAttribute::Type::kNumeric);
  ASSERT_EQ(t->attributes[3].levels.size(), 3u);
  EXPECT_EQ(t->attributes[3].levels[2], "mem out");
  ASSERT_EQ(t->rows.size(), 3u);
  EXPECT_EQ(*t->rows[0][1], "solver, v1");
  EXPECT_EQ(*t->rows[1][1], "solver \"2\"");
  EXPECT_FALSE(t->rows[1][2].has_value());  // '?'
  EXPECT_EQ(*t->rows[2][1], "it's");
  EXPECT_EQ(t->Column("RUNTIME"), 2);
}

TEST(ArffTest, BadInputIsAStatus) {
  EXPECT_FALSE(ParseArff("").ok());
  EXPECT_FALSE(ParseArff("@relation x\n@attribute a numeric\n@data\n1,2\n").ok());
  EXPECT_FALSE(ParseArff("@relation x\n@attribute a blob\n@data\n").ok());
  EXPECT_FALSE(ParseArff("@relation x\n@attribute a numeric\n@data\n{0 1}\n").ok());
  EXPECT_FALSE(ParseArff("@relation x\n@attribute 'a numeric\n").ok());
  EXPECT_FALSE(ParseArff("junk before header\n").ok());
  EXPECT_FALSE(ParseArff("@relation x\n@attribute a {x,y\n").ok());
}

TEST(TabularFuzzTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(42);
  const std::string alphabet = "ab,'\"\\?%@{}\n\r 0123456789.eE-+#\t";
  const std::string seeds[] = {"@relation r\n@attribute a numeric\n@attribute b string\n@data\n1,'x'\n",
                               "h1,h2\n\"a\",'b'\n1,2\n"};
  for (int i = 0; i < 3000; ++i) {
    std::string s = seeds[i % 2];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 1: if (pos < s.size()) s.erase(pos, 1); break;
        default: if (pos < s.size()) s[pos] = static_cast<char>(rng() % 256); break;
      }
    }
    (void)ParseArff(s);
    (void)ParseCsv(s);
  }
  SUCCEED();
}

}  // namespace
}  // namespace accelsel::model::eval
