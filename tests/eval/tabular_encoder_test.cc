// The generic tabular encoder types its columns: wide positive numerics log-scaled, narrow ones raw, text one-hot.
#include "eval/tabular_encoder.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace accelsel::eval {
namespace {

TEST(TabularEncoderTest, TabularEncoderTypesColumns) {
  TabularEncoder enc;
  std::vector<std::vector<std::string>> cols = {
      {"1", "10", "1000", "?"},       // numeric, spans > 10x: log
      {"a", "b", "a", ""},            // categorical: one-hot
      {"0.5", "0.7", "0.6", "0.55"},  // numeric, narrow: raw
  };
  enc.Fit({"n", "c", "r"}, cols);
  EXPECT_TRUE(enc.is_numeric(0));
  EXPECT_FALSE(enc.is_numeric(1));
  EXPECT_EQ(enc.width(), 1u + 2u + 1u);
  std::vector<float> row;
  enc.Encode(cols, 2, &row);
  EXPECT_NEAR(row[0], std::log(1000.0), 1e-4);
  EXPECT_EQ(row[1], 1.0f);
  EXPECT_EQ(row[2], 0.0f);
  EXPECT_NEAR(row[3], 0.6, 1e-6);
  row.clear();
  enc.Encode(cols, 3, &row);
  EXPECT_TRUE(std::isnan(row[0]));
}

}  // namespace
}  // namespace accelsel::eval
