// The stable context keys: the held-out split key is the FNV-1a computation the split was first made with (so the
// contexts held out from every stored model stay held out), and ContextKey keeps its value across releases.
#include "model/context_key.h"

#include <random>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace accelsel::model {
namespace {

// The held-out split's key as server/model_manager.cc computed it before model/context_key.h, verbatim.
uint64_t OriginalHoldoutKey(const TaskContext& context) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](absl::string_view bytes) {
    for (unsigned char ch : bytes) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // field separator
    h *= 1099511628211ULL;
  };
  mix(absl::AsciiStrToLower(context.model.name));
  mix(absl::AsciiStrToLower(context.model.weight_dtype));
  mix(absl::AsciiStrToLower(context.hardware.accelerator));
  mix(absl::StrCat(context.hardware.count, "/", context.workload.prompt_tokens, "/", context.workload.output_tokens,
                   "/", context.workload.batch_size));
  return h;
}

TaskContext RandomContext(std::mt19937_64& rng) {
  const char* models[] = {"meta-llama/Meta-Llama-3-8B", "Qwen/Qwen2-72B", "mistralai/Mistral-7B-v0.1", ""};
  const char* dtypes[] = {"bf16", "FP8", ""};
  const char* accelerators[] = {"Nvidia H100 GPU", "Intel Max 1550 GPU", "AMD MI250", ""};
  TaskContext c;
  c.model.name = models[rng() % 4];
  c.model.weight_dtype = dtypes[rng() % 3];
  c.hardware.accelerator = accelerators[rng() % 4];
  c.hardware.count = static_cast<uint32_t>(rng() % 9);
  c.workload.prompt_tokens = static_cast<uint32_t>(rng() % 4096);
  c.workload.output_tokens = static_cast<uint32_t>(rng() % 4096);
  c.workload.batch_size = static_cast<uint32_t>(rng() % 128);
  if (rng() % 2 == 0) c.extra["rows"] = static_cast<double>(rng() % 1000);
  return c;
}

TEST(ContextKeyTest, HoldoutKeyIsTheOriginalSplitComputation) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const TaskContext c = RandomContext(rng);
    // A context without extra features keeps its original split; one with them is split by them too.
    if (c.extra.empty()) {
      ASSERT_EQ(HoldoutContextKey(c), OriginalHoldoutKey(c)) << c.model.name << " " << c.hardware.accelerator;
    } else {
      ASSERT_NE(HoldoutContextKey(c), OriginalHoldoutKey(c)) << c.model.name << " " << c.hardware.accelerator;
    }
  }
}

TEST(ContextKeyTest, KeysIgnoreCaseAndKeepTheirValues) {
  TaskContext c;
  c.model.name = "meta-llama/Meta-Llama-3-8B";
  c.model.weight_dtype = "bf16";
  c.hardware.accelerator = "Nvidia H100 GPU";
  c.hardware.count = 1;
  c.workload.prompt_tokens = 512;
  c.workload.output_tokens = 512;
  c.workload.batch_size = 16;
  TaskContext upper = c;
  upper.model.name = absl::AsciiStrToUpper(c.model.name);
  upper.hardware.accelerator = absl::AsciiStrToUpper(c.hardware.accelerator);
  EXPECT_EQ(ContextKey(c), ContextKey(upper));
  EXPECT_EQ(ContextGroupKey(c), ContextGroupKey(upper));
  EXPECT_EQ(HoldoutContextKey(c), HoldoutContextKey(upper));
  // Values pinned: these keys must be the same in every process and release.
  EXPECT_EQ(ContextKey(c), 0x93e9d1a1a00822b1ULL);
  EXPECT_EQ(ContextGroupKey(c), 0x430c070c744f515bULL);
  TaskContext extra = c;
  extra.extra["rows"] = 3;
  EXPECT_NE(ContextKey(extra), ContextKey(c));
  EXPECT_EQ(ContextGroupKey(extra), ContextGroupKey(c));
  // The held-out split follows the extra features too (a table whose tasks differ only there must hold some out);
  // a context without them keeps the original split (HoldoutKeyIsTheOriginalSplitComputation).
  EXPECT_NE(HoldoutContextKey(extra), HoldoutContextKey(c));
  TaskContext other_extra = extra;
  other_extra.extra["rows"] = 4;
  EXPECT_NE(HoldoutContextKey(other_extra), HoldoutContextKey(extra));
  TaskContext upper_extra = extra;
  upper_extra.extra = {{"ROWS", 3}};
  EXPECT_EQ(HoldoutContextKey(upper_extra), HoldoutContextKey(extra));
  TaskContext embedded = c;
  embedded.embedding = {0.5f, -0.0f};
  TaskContext embedded_zero = c;
  embedded_zero.embedding = {0.5f, 0.0f};
  EXPECT_NE(HoldoutContextKey(embedded), HoldoutContextKey(c));
  EXPECT_EQ(HoldoutContextKey(embedded), HoldoutContextKey(embedded_zero));
  // Many tasks differing only in an extra column: about the nominal share of them is held out.
  int held = 0;
  for (int i = 0; i < 1000; ++i) {
    TaskContext t = c;
    t.extra["job"] = i;
    held += (HoldoutContextKey(t) >> 17) % 100 < 20;
  }
  EXPECT_GT(held, 150);
  EXPECT_LT(held, 250);
}

}  // namespace
}  // namespace accelsel::model
