// StrategyEncodingCache: the cached encoding is exactly EncodeStrategy's, a redefinition under the same id is
// re-encoded, and concurrent callers agree.
#include "model/strategy_encoding_cache.h"

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "model/features.h"

namespace accelsel::model {
namespace {

Strategy Make(const std::string& id, const std::string& tp, const std::string& quant) {
  return Strategy{id, {{"engine", "vLLM"}, {"tp", tp}, {"quant", quant}}, ""};
}

std::vector<float> Direct(const Strategy& s) {
  std::vector<float> x;
  EncodeStrategy(s, &x);
  return x;
}

// NaN-aware equality (parameter buckets hold NaN when unset).
void ExpectSameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) {
      EXPECT_TRUE(std::isnan(b[i])) << i;
    } else {
      EXPECT_EQ(a[i], b[i]) << i;
    }
  }
}

TEST(StrategyEncodingCacheTest, SameAsEncodeStrategyOnMissAndHit) {
  StrategyEncodingCache cache;
  const Strategy s = Make("vllm-tp2-fp8", "2", "fp8");
  std::vector<float> miss, hit;
  EXPECT_EQ(cache.Append(s, &miss), StableHash(s.id));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Append(s, &hit), StableHash(s.id));
  ExpectSameFloats(miss, Direct(s));
  ExpectSameFloats(hit, Direct(s));
}

TEST(StrategyEncodingCacheTest, AppendsAfterExistingFeatures) {
  StrategyEncodingCache cache;
  const Strategy a = Make("a", "1", "fp16"), b = Make("b", "4", "int4");
  std::vector<float> x;
  cache.Append(a, &x);
  cache.Append(b, &x);
  cache.Append(a, &x);
  const size_t w = StrategyFeatureWidth();
  ASSERT_EQ(x.size(), 3 * w);
  ExpectSameFloats(std::vector<float>(x.begin() + w, x.begin() + 2 * w), Direct(b));
  ExpectSameFloats(std::vector<float>(x.begin() + 2 * w, x.end()), Direct(a));
}

TEST(StrategyEncodingCacheTest, RedefinitionUnderTheSameIdIsReencoded) {
  StrategyEncodingCache cache;
  const Strategy before = Make("s", "2", "fp8"), after = Make("s", "8", "int4");
  const std::vector<float> b = Direct(before), a = Direct(after);
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) differ |= !std::isnan(a[i]) && !std::isnan(b[i]) && a[i] != b[i];
  for (size_t i = 0; i < a.size(); ++i) differ |= std::isnan(a[i]) != std::isnan(b[i]);
  ASSERT_TRUE(differ) << "the two definitions must encode differently for this test to mean anything";
  std::vector<float> x1, x2, x3;
  cache.Append(before, &x1);
  cache.Append(after, &x2);
  cache.Append(after, &x3);
  ExpectSameFloats(x2, Direct(after));
  ExpectSameFloats(x3, Direct(after));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(StrategyEncodingCacheTest, ConcurrentCallersGetTheSameEncoding) {
  StrategyEncodingCache cache;
  std::vector<Strategy> strategies;
  for (int i = 0; i < 64; ++i) strategies.push_back(Make("s" + std::to_string(i), std::to_string(1 << (i % 4)), "fp8"));
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        got[t].clear();
        for (const Strategy& s : strategies) cache.Append(s, &got[t]);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<float> want;
  for (const Strategy& s : strategies) EncodeStrategy(s, &want);
  for (const auto& g : got) ExpectSameFloats(g, want);
  EXPECT_EQ(cache.size(), strategies.size());
}

}  // namespace
}  // namespace accelsel::model
