// Feature encoding: widths, log scaling, roofline numbers, hashed names and strategy components.
#include "model/features.h"

#include <cmath>

#include "gtest/gtest.h"

namespace accelsel::model {
namespace {

TaskContext Llama7bOnH100(uint32_t batch) {
  TaskContext c;
  c.model = {"meta-llama/Llama-2-7b-hf", "llama", 7.0, 32, 4096, 32, 32, 0, 0, "fp16"};
  c.hardware = {"Nvidia H100 GPU", 1, 80, 3350, 989, "nvlink", 4.0};
  c.workload = {1024, 1024, batch, 0, 0, "bench"};
  return c;
}

TEST(FeaturesTest, WidthsAreFixedWhateverTheInput) {
  std::vector<float> a, b;
  EncodeContext(Llama7bOnH100(8), &a);
  EncodeContext(TaskContext{}, &b);
  EXPECT_EQ(a.size(), ContextFeatureWidth());
  EXPECT_EQ(b.size(), ContextFeatureWidth());
  TaskContext with_embedding = Llama7bOnH100(8);
  with_embedding.embedding.assign(100, 0.5f);  // longer than the fixed width: truncated
  with_embedding.extra = {{"gpu_clock_mhz", 1980}, {"ecc", 1}};
  std::vector<float> c;
  EncodeContext(with_embedding, &c);
  EXPECT_EQ(c.size(), ContextFeatureWidth());
  std::vector<float> s;
  EncodeStrategy(Strategy{"x", {{"engine", "vllm"}, {"tp", "2"}}, ""}, &s);
  EXPECT_EQ(s.size(), StrategyFeatureWidth());
}

TEST(FeaturesTest, NumericsAreLogScaledAndUnknownsMissing) {
  std::vector<float> x;
  EncodeContext(Llama7bOnH100(16), &x);
  const auto& names = ContextNumericFeatureNames();
  auto at = [&](const std::string& n) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == n) return x[i];
    }
    ADD_FAILURE() << "no feature " << n;
    return 0.0f;
  };
  EXPECT_NEAR(at("log_batch"), std::log(16.0), 1e-5);
  EXPECT_NEAR(at("log_params_b"), std::log(7.0), 1e-5);
  EXPECT_NEAR(at("log_bandwidth_gbps"), std::log(3350.0), 1e-4);
  EXPECT_TRUE(std::isnan(at("log_request_rate")));  // 0 = not given
  std::vector<float> empty;
  EncodeContext(TaskContext{}, &empty);
  EXPECT_TRUE(std::isnan(empty[0]));  // parameters unknown
}

TEST(FeaturesTest, RooflineMatchesHandComputation) {
  const Roofline r = ComputeRoofline(Llama7bOnH100(1));
  EXPECT_NEAR(r.weight_gb, 14.0, 1e-9);  // 7B × 2 bytes
  // KV: 2 × 32 layers × 32 heads × 128 dims × 2 bytes × 2048 tokens.
  EXPECT_NEAR(r.kv_gb, 2.0 * 32 * 32 * 128 * 2 * 2048 / 1e9, 1e-9);
  EXPECT_NEAR(r.headroom_gb, 80 - 14 - r.kv_gb, 1e-9);
  EXPECT_NEAR(r.compute_s_per_token, 2 * 7e9 / 989e12, 1e-15);
  EXPECT_GT(r.estimate_e2e_s, 1024 * r.memory_s_per_step * 0.99);
  // Twice the devices: half the per-step memory time.
  TaskContext two = Llama7bOnH100(1);
  two.hardware.count = 2;
  EXPECT_NEAR(ComputeRoofline(two).memory_s_per_step, r.memory_s_per_step / 2, 1e-12);
  // A model that does not fit shows negative headroom.
  TaskContext big = Llama7bOnH100(1);
  big.model.parameters_b = 70;
  EXPECT_LT(ComputeRoofline(big).headroom_gb, 0);
  EXPECT_TRUE(IsMissing(ComputeRoofline(TaskContext{}).weight_gb));
  EXPECT_FALSE(IsMissing(LogRooflineBaseline(Llama7bOnH100(4), BaselineMetric::kE2eMs)));
  EXPECT_TRUE(IsMissing(LogRooflineBaseline(TaskContext{}, BaselineMetric::kE2eMs)));
}

TEST(FeaturesTest, UnknownNamesStillEncodeAndShareTokens) {
  TaskContext a = Llama7bOnH100(1), b = Llama7bOnH100(1), c = Llama7bOnH100(1);
  b.hardware.accelerator = "Nvidia B200 GPU";  // never seen anywhere
  c.hardware.accelerator = "Totally New Chip";
  std::vector<float> xa, xb, xc;
  EncodeContext(a, &xa);
  EncodeContext(b, &xb);
  EncodeContext(c, &xc);
  const size_t base = ContextNumericFeatureNames().size() + FeatureLayout::kNameBuckets;  // accelerator block
  int shared_ab = 0, shared_ac = 0;
  for (int i = 0; i < FeatureLayout::kNameBuckets; ++i) {
    shared_ab += xa[base + i] == 1.0f && xb[base + i] == 1.0f;
    shared_ac += xa[base + i] == 1.0f && xc[base + i] == 1.0f;
  }
  EXPECT_GE(shared_ab, 1);  // "nvidia", "gpu"
  EXPECT_GT(shared_ab, shared_ac);
}

TEST(FeaturesTest, StrategyComponentsAndParameters) {
  auto parsed = ComponentsFromId("vllm+tp2,quant=fp8");
  ASSERT_EQ(parsed.size(), 3u);
  EXPECT_EQ(parsed[0], (std::pair<std::string, std::string>{"tag", "vllm"}));
  EXPECT_EQ(parsed[1], (std::pair<std::string, std::string>{"tp", "2"}));
  EXPECT_EQ(parsed[2], (std::pair<std::string, std::string>{"quant", "fp8"}));
  std::vector<float> tp2, tp8, tp2_again;
  EncodeStrategy(Strategy{"a", {{"engine", "vllm"}, {"tp", "2"}}, ""}, &tp2);
  EncodeStrategy(Strategy{"b", {{"engine", "vllm"}, {"tp", "8"}}, ""}, &tp8);
  EncodeStrategy(Strategy{"a", {{"engine", "vllm"}, {"tp", "2"}}, ""}, &tp2_again);
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {  // NaN-aware equality
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
    }
    return true;
  };
  EXPECT_TRUE(same(tp2, tp2_again));
  EXPECT_FALSE(same(tp2, tp8));
  // The numeric parameter enters as log2: tp=2 -> 1, tp=8 -> 3, in the same slot.
  int found = 0;
  for (size_t i = FeatureLayout::kComponentBuckets; i < tp2.size(); ++i) {
    if (!std::isnan(tp2[i])) {
      EXPECT_FLOAT_EQ(tp2[i], 1.0f);
      EXPECT_FLOAT_EQ(tp8[i], 3.0f);
      ++found;
    }
  }
  EXPECT_EQ(found, 1);
}

}  // namespace
}  // namespace accelsel::model
