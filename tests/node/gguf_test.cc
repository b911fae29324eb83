// node/gguf: the reader on GGUF files this test writes (dense, grouped-query, mixture of experts), and its refusals
// of files that are not GGUF, of another version, or cut short.
#include "node/gguf.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/node/gguf_writer.h"
#include "tests/node/node_test_util.h"

namespace accelsel::node {
namespace {

using testing::GgufWriter;
using ::testing::HasSubstr;
using testing::LlamaModel;

uint64_t DenseParameters(uint64_t layers, uint64_t hidden, uint64_t heads, uint64_t kv_heads, uint64_t ffn) {
  const uint64_t vocab = 8, kv = hidden / heads * kv_heads;
  return 2 * hidden * vocab + layers * (2 * hidden * hidden + 2 * hidden * kv + hidden + 3 * hidden * ffn);
}

TEST(GgufTest, DescribesADenseGroupedQueryModel) {
  const std::string path = testing::TempDir("gguf") + "/m.F16.gguf";
  LlamaModel(/*layers=*/3, /*hidden=*/64, /*heads=*/8, /*kv_heads=*/2, /*ffn=*/128).Write(path);
  auto info = ReadGgufInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->version, 3u);
  EXPECT_EQ(info->array_lengths.at("tokenizer.ggml.tokens"), 8u);
  EXPECT_EQ(info->Uint("tokenizer.ggml.add_bos_token"), 1u);
  EXPECT_EQ(info->parameters, DenseParameters(3, 64, 8, 2, 128));
  const v1::ModelDescriptor m = DescribeModel(*info, "tiny-gqa");
  EXPECT_EQ(m.name(), "tiny-gqa");
  EXPECT_EQ(m.family(), "llama");
  EXPECT_EQ(m.layers(), 3u);
  EXPECT_EQ(m.hidden_size(), 64u);
  EXPECT_EQ(m.attention_heads(), 8u);
  EXPECT_EQ(m.kv_heads(), 2u);
  EXPECT_EQ(m.experts(), 0u);
  EXPECT_EQ(m.weight_dtype(), "fp16");
  EXPECT_DOUBLE_EQ(m.parameters_b(), DenseParameters(3, 64, 8, 2, 128) / 1e9);
}

TEST(GgufTest, DescribesAMixtureOfExpertsAndAQuantisedFile) {
  const std::string path = testing::TempDir("gguf") + "/moe.Q4_K_M.gguf";
  LlamaModel(2, 32, 4, 4, 64, /*experts=*/8, /*used=*/2, /*file_type=*/15).Write(path, /*version=*/2);
  auto info = ReadGgufInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  const v1::ModelDescriptor m = DescribeModel(*info, "moe");
  EXPECT_EQ(m.experts(), 8u);
  EXPECT_EQ(m.active_experts(), 2u);
  EXPECT_EQ(m.weight_dtype(), "q4_k_m");
  // Three expert matrices of 32 x 64 x 8 per layer dominate.
  EXPECT_GT(info->parameters, 2u * 3 * 32 * 64 * 8);
}

TEST(GgufTest, MissingKeysLeaveFieldsUnknown) {
  const std::string path = testing::TempDir("gguf") + "/bare.gguf";
  GgufWriter w;
  w.Str("general.architecture", "llama");
  w.U32("llama.attention.head_count", 4);
  w.Write(path);
  auto info = ReadGgufInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  const v1::ModelDescriptor m = DescribeModel(*info, "bare");
  EXPECT_EQ(m.layers(), 0u);
  EXPECT_EQ(m.kv_heads(), 4u);  // llama.cpp's rule: no head_count_kv = as many as heads
  EXPECT_EQ(m.weight_dtype(), "");
  EXPECT_EQ(m.parameters_b(), 0);
}

TEST(GgufTest, RefusesOtherFilesVersionsAndTruncation) {
  const std::string dir = testing::TempDir("gguf");
  { std::ofstream(dir + "/text.gguf") << "not a model at all"; }
  EXPECT_THAT(std::string(ReadGgufInfo(dir + "/text.gguf").status().message()), HasSubstr("not a GGUF file"));

  LlamaModel(2, 32, 4, 4, 64).Write(dir + "/v1.gguf", /*version=*/1);
  EXPECT_THAT(std::string(ReadGgufInfo(dir + "/v1.gguf").status().message()),
              HasSubstr("GGUF version 1 (readable: 2, 3)"));

  const std::string whole = LlamaModel(2, 32, 4, 4, 64).Bytes();
  for (size_t cut : {size_t{10}, whole.size() / 2, whole.size() - 1}) {
    { std::ofstream(dir + "/cut.gguf", std::ios::binary | std::ios::trunc) << whole.substr(0, cut); }
    auto info = ReadGgufInfo(dir + "/cut.gguf");
    ASSERT_FALSE(info.ok()) << "cut at " << cut;
    EXPECT_THAT(std::string(info.status().message()), HasSubstr("truncated")) << "cut at " << cut;
  }
  EXPECT_EQ(ReadGgufInfo(dir + "/absent.gguf").status().code(), absl::StatusCode::kNotFound);
}

TEST(GgufTest, WeightDtypeNames) {
  EXPECT_EQ(WeightDtypeName(1), "fp16");
  EXPECT_EQ(WeightDtypeName(7), "q8_0");
  EXPECT_EQ(WeightDtypeName(2), "q4_0");
  EXPECT_EQ(WeightDtypeName(32), "bf16");
  EXPECT_EQ(WeightDtypeName(999), "");
}

}  // namespace
}  // namespace accelsel::node
