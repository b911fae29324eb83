// node/catalogue: every strategy is valid, unique, round-trips through its components and its id, marks exactly
// the lossy choices, and never pairs a quantised cache with flash attention off.
#include "node/catalogue.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace accelsel::node {
namespace {

using ::testing::HasSubstr;

std::string Component(const v1::Strategy& s, const std::string& method, bool* lossy = nullptr) {
  for (const auto& c : s.components()) {
    if (c.method() == method) {
      if (lossy != nullptr) *lossy = c.lossy();
      return c.value();
    }
  }
  return "";
}

TEST(CatalogueTest, SixtyFourGridStrategiesAndTheDefaultAllValidAndUnique) {
  const std::vector<v1::Strategy> all = Catalogue();
  ASSERT_EQ(all.size(), 65u);
  std::set<std::string> ids;
  for (const v1::Strategy& s : all) {
    EXPECT_TRUE(ids.insert(s.id()).second) << s.id();
    EXPECT_LE(s.id().size(), 128u);
    EXPECT_FALSE(s.description().empty());
    EXPECT_EQ(Component(s, "engine"), "llama.cpp");
    auto settings = SettingsFromStrategy(s);
    ASSERT_TRUE(settings.ok()) << s.id() << ": " << settings.status();
    EXPECT_TRUE(ValidateSettings(*settings).ok());
    EXPECT_EQ(StrategyId(*settings), s.id());
    if (settings->kv != KvType::kF16) {
      EXPECT_EQ(settings->flash_attn, FlashAttn::kOn) << s.id();
    }
  }
  EXPECT_EQ(ids.count(kDefaultStrategyId), 1u);
  EXPECT_EQ(ids.count("llamacpp:q4_0:kv=q8_0:fa=on:t2:b2048/512"), 1u);
  EXPECT_EQ(ids.count("llamacpp:q4_k_m:kv=f16:fa=off:t1:b512/128"), 1u);
  EXPECT_EQ(ids.count("llamacpp:f16:kv=q8_0:fa=off:t2:b2048/512"), 0u);
}

TEST(CatalogueTest, IdsAndComponentsRoundTrip) {
  for (const v1::Strategy& s : Catalogue()) {
    auto from_id = SettingsFromId(s.id());
    ASSERT_TRUE(from_id.ok()) << s.id() << ": " << from_id.status();
    auto from_components = SettingsFromStrategy(s);
    ASSERT_TRUE(from_components.ok());
    EXPECT_TRUE(*from_id == *from_components) << s.id();
    EXPECT_EQ(ToStrategy(*from_id).SerializeAsString(), s.SerializeAsString()) << s.id();
  }
}

TEST(CatalogueTest, LossyExactlyBelowF16WeightsOrF16Cache) {
  for (const v1::Strategy& s : Catalogue()) {
    bool quant_lossy = false, kv_lossy = false, fa_lossy = true;
    const std::string quant = Component(s, "quant", &quant_lossy);
    const std::string kv = Component(s, "kv_cache", &kv_lossy);
    Component(s, "flash_attn", &fa_lossy);
    EXPECT_EQ(quant_lossy, quant != "f16") << s.id();
    EXPECT_EQ(kv_lossy, kv != "f16") << s.id();
    EXPECT_FALSE(fa_lossy) << s.id();
    EXPECT_EQ(IsLossy(s), quant != "f16" || kv != "f16") << s.id();
  }
  EXPECT_FALSE(IsLossy(ToStrategy(DefaultSettings())));
}

TEST(CatalogueTest, DefaultIsLlamaCppWithoutOptions) {
  const EngineSettings d = DefaultSettings();
  EXPECT_EQ(d.weights, WeightFormat::kF16);
  EXPECT_EQ(d.kv, KvType::kF16);
  EXPECT_EQ(d.flash_attn, FlashAttn::kAuto);
  EXPECT_EQ(d.threads, 0);
  EXPECT_EQ(d.n_batch, 2048);
  EXPECT_EQ(d.n_ubatch, 512);
  const v1::Strategy s = ToStrategy(d);
  EXPECT_EQ(s.id(), kDefaultStrategyId);
  EXPECT_EQ(Component(s, "threads"), "all");
  EXPECT_EQ(Component(s, "flash_attn"), "auto");
}

TEST(CatalogueTest, HostWithOneCoreLosesTwoThreadStrategies) {
  const auto one = StrategiesForHost(1);
  const auto two = StrategiesForHost(2);
  EXPECT_EQ(two.size(), 65u);
  EXPECT_EQ(one.size(), 33u);  // 32 one-thread strategies and the default (all cores)
  for (const auto& s : one) EXPECT_NE(Component(s, "threads"), "2") << s.id();
}

TEST(CatalogueTest, RefusalsNameTheComponentAndRule) {
  auto refused = [](const std::string& id) { return std::string(SettingsFromId(id).status().message()); };
  EXPECT_THAT(refused("vllm"), HasSubstr("is not llamacpp:<quant>"));
  EXPECT_THAT(refused("llamacpp:q3_k:kv=f16:fa=on:t2:b2048/512"), HasSubstr("quant: \"q3_k\" is not one of"));
  EXPECT_THAT(refused("llamacpp:f16:kv=q4_0:fa=off:t2:b2048/512"), HasSubstr("kv_cache: q4_0 needs flash_attn=on"));
  EXPECT_THAT(refused("llamacpp:f16:kv=f16:fa=on:t0:b2048/512"), HasSubstr("threads: \"0\""));
  EXPECT_THAT(refused("llamacpp:f16:kv=f16:fa=on:t2:b128/512"), HasSubstr("batch: needs 1 <= n_ubatch <= n_batch"));
  EXPECT_THAT(refused("llamacpp:f16:kv=f16:fa=auto:tall:b2048/512"), HasSubstr("is spelt \"llamacpp:default\""));

  v1::Strategy other = ToStrategy(DefaultSettings());
  other.mutable_components(0)->set_value("vllm");
  EXPECT_THAT(std::string(SettingsFromStrategy(other).status().message()), HasSubstr("engine: \"vllm\""));
  v1::Strategy twice = ToStrategy(DefaultSettings());
  *twice.add_components() = twice.components(1);
  EXPECT_THAT(std::string(SettingsFromStrategy(twice).status().message()), HasSubstr("quant: component given twice"));
  v1::Strategy missing = ToStrategy(DefaultSettings());
  missing.mutable_components()->RemoveLast();
  EXPECT_THAT(std::string(SettingsFromStrategy(missing).status().message()), HasSubstr("batch: component missing"));
}

}  // namespace
}  // namespace accelsel::node
