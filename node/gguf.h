// A small reader of GGUF (v2/v3) metadata: the header, the key/value section and the tensor shapes, never the tensor
// data. Enough to describe a model to accelsel without linking the engine.
#ifndef ACCELSEL_NODE_GGUF_H_
#define ACCELSEL_NODE_GGUF_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::node {

// What a GGUF file says about its model. Scalar values are kept by key; arrays (the tokenizer's vocabulary, ...)
// only by their length.
struct GgufInfo {
  uint32_t version = 0;
  uint64_t tensor_count = 0;
  // Scalars: unsigned and signed integers, floating point, bool (as uint64 0/1) and strings.
  std::map<std::string, std::variant<uint64_t, int64_t, double, std::string>> values;
  std::map<std::string, uint64_t> array_lengths;
  uint64_t parameters = 0;  // sum over tensors of their element counts

  // An integer value (unsigned, or signed >= 0); `fallback` when absent or of another type.
  uint64_t Uint(const std::string& key, uint64_t fallback = 0) const;
  std::string Str(const std::string& key) const;  // "" when absent or not a string
};

// Reads the metadata of the GGUF file at `path`. Refuses a file that is not GGUF, another version, or whose counts
// and lengths run past the end of the file (InvalidArgument naming the path and what is wrong).
absl::StatusOr<GgufInfo> ReadGgufInfo(const std::string& path);

// llama.cpp's general.file_type (enum llama_ftype) as a weight dtype name: 0 "fp32", 1 "fp16", 32 "bf16", and
// the quantisation names lower-cased ("q8_0", "q4_0", "q4_k_m", ...); "" when absent or unknown.
std::string WeightDtypeName(uint64_t file_type);

// A ModelDescriptor named `name`: family from general.architecture; layers, hidden size, heads, KV heads, experts
// from "<architecture>.*"; parameters from the tensor shapes; weight dtype from general.file_type.
v1::ModelDescriptor DescribeModel(const GgufInfo& info, const std::string& name);

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_GGUF_H_
