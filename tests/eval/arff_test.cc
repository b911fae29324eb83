// The ARFF reader on small inline fixtures: both quote styles, '?' missing, comments, bad input answered with a
// Status (never a crash, also on random garbage).
#include "eval/arff.h"

#include <random>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/test_util/random_edits.h"

namespace accelsel::eval {
namespace {

using testing_util::Mutate;

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

TEST(ArffTest, RandomEditsGiveATableOrAnInvalidArgument) {
  std::mt19937_64 rng(42);
  int refused = 0;
  for (int i = 0; i < 3000; ++i) {
    auto t = ParseArff(Mutate("@relation r\n@attribute a numeric\n@attribute b string\n@data\n1,'x'\n", &rng));
    if (t.ok()) {
      for (const auto& row : t->rows) EXPECT_EQ(row.size(), t->attributes.size());
    } else {
      ++refused;
      EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
      EXPECT_FALSE(t.status().message().empty());
    }
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace accelsel::eval
