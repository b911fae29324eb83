// GGUF metadata reader. Layout (ggml/docs/gguf.md): "GGUF", uint32 version, uint64 tensor count, uint64 KV count;
// each KV is a string key, a uint32 type and a value; then per tensor a string name, uint32 dimensions, uint64
// sizes, uint32 ggml type and uint64 offset. Strings are uint64 length + bytes; everything little-endian.
#include "node/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace accelsel::node {
namespace {

enum GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// Bounds that no real model reaches; they keep a corrupt count from looping for hours.
constexpr uint64_t kMaxStringBytes = 1 << 20;
constexpr uint32_t kMaxDims = 8;

// Sequential reads with a byte budget: the file size, so a corrupt length fails instead of reading garbage.
class Reader {
 public:
  Reader(const std::string& path, std::ifstream* in, uint64_t size) : path_(path), in_(in), left_(size) {}

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", what));
  }

  absl::Status Bytes(void* out, uint64_t n) {
    if (n > left_) return Error("truncated (a length runs past the end of the file)");
    in_->read(static_cast<char*>(out), static_cast<std::streamsize>(n));
    if (!*in_) return Error("read error");
    left_ -= n;
    return absl::OkStatus();
  }

  absl::Status Skip(uint64_t n) {
    if (n > left_) return Error("truncated (a length runs past the end of the file)");
    in_->seekg(static_cast<std::streamoff>(n), std::ios::cur);
    if (!*in_) return Error("read error");
    left_ -= n;
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Pod() {
    T v;
    ACCELSEL_RETURN_IF_ERROR(Bytes(&v, sizeof(v)));
    return v;
  }

  absl::StatusOr<std::string> String() {
    ACCELSEL_ASSIGN_OR_RETURN(const uint64_t n, Pod<uint64_t>());
    if (n > kMaxStringBytes) return Error(absl::StrCat("string of ", n, " bytes"));
    std::string s(n, '\0');
    ACCELSEL_RETURN_IF_ERROR(Bytes(s.data(), n));
    return s;
  }

 private:
  const std::string& path_;
  std::ifstream* in_;
  uint64_t left_;
};

uint64_t FixedSize(uint32_t type) {
  switch (type) {
    case kUint8:
    case kInt8:
    case kBool: return 1;
    case kUint16:
    case kInt16: return 2;
    case kUint32:
    case kInt32:
    case kFloat32: return 4;
    case kUint64:
    case kInt64:
    case kFloat64: return 8;
    default: return 0;
  }
}

// One scalar of `type` into `info->values[key]`.
absl::Status ReadScalar(Reader& r, uint32_t type, const std::string& key, GgufInfo* info) {
  auto& slot = info->values[key];
  switch (type) {
    case kUint8: {
      ACCELSEL_ASSIGN_OR_RETURN(uint8_t v, r.Pod<uint8_t>());
      slot = uint64_t{v};
      break;
    }
    case kBool: {
      ACCELSEL_ASSIGN_OR_RETURN(uint8_t v, r.Pod<uint8_t>());
      slot = uint64_t{v != 0};
      break;
    }
    case kUint16: {
      ACCELSEL_ASSIGN_OR_RETURN(uint16_t v, r.Pod<uint16_t>());
      slot = uint64_t{v};
      break;
    }
    case kUint32: {
      ACCELSEL_ASSIGN_OR_RETURN(uint32_t v, r.Pod<uint32_t>());
      slot = uint64_t{v};
      break;
    }
    case kUint64: {
      ACCELSEL_ASSIGN_OR_RETURN(uint64_t v, r.Pod<uint64_t>());
      slot = v;
      break;
    }
    case kInt8: {
      ACCELSEL_ASSIGN_OR_RETURN(int8_t v, r.Pod<int8_t>());
      slot = int64_t{v};
      break;
    }
    case kInt16: {
      ACCELSEL_ASSIGN_OR_RETURN(int16_t v, r.Pod<int16_t>());
      slot = int64_t{v};
      break;
    }
    case kInt32: {
      ACCELSEL_ASSIGN_OR_RETURN(int32_t v, r.Pod<int32_t>());
      slot = int64_t{v};
      break;
    }
    case kInt64: {
      ACCELSEL_ASSIGN_OR_RETURN(int64_t v, r.Pod<int64_t>());
      slot = v;
      break;
    }
    case kFloat32: {
      ACCELSEL_ASSIGN_OR_RETURN(float v, r.Pod<float>());
      slot = double{v};
      break;
    }
    case kFloat64: {
      ACCELSEL_ASSIGN_OR_RETURN(double v, r.Pod<double>());
      slot = v;
      break;
    }
    case kString: {
      ACCELSEL_ASSIGN_OR_RETURN(std::string v, r.String());
      slot = std::move(v);
      break;
    }
    default: return r.Error(absl::StrCat("key ", key, ": unknown value type ", type));
  }
  return absl::OkStatus();
}

absl::Status ReadArray(Reader& r, const std::string& key, GgufInfo* info) {
  ACCELSEL_ASSIGN_OR_RETURN(const uint32_t type, r.Pod<uint32_t>());
  ACCELSEL_ASSIGN_OR_RETURN(const uint64_t n, r.Pod<uint64_t>());
  info->array_lengths[key] = n;
  if (type == kString) {
    for (uint64_t i = 0; i < n; ++i) {
      ACCELSEL_ASSIGN_OR_RETURN(const uint64_t len, r.Pod<uint64_t>());
      ACCELSEL_RETURN_IF_ERROR(r.Skip(len));
    }
    return absl::OkStatus();
  }
  const uint64_t size = FixedSize(type);
  if (size == 0) return r.Error(absl::StrCat("key ", key, ": array of unsupported type ", type));
  if (n > UINT64_MAX / size) return r.Error(absl::StrCat("key ", key, ": array length ", n));
  return r.Skip(n * size);
}

}  // namespace

uint64_t GgufInfo::Uint(const std::string& key, uint64_t fallback) const {
  auto it = values.find(key);
  if (it == values.end()) return fallback;
  if (const auto* u = std::get_if<uint64_t>(&it->second)) return *u;
  if (const auto* i = std::get_if<int64_t>(&it->second); i != nullptr && *i >= 0) return static_cast<uint64_t>(*i);
  return fallback;
}

std::string GgufInfo::Str(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end()) return "";
  const auto* s = std::get_if<std::string>(&it->second);
  return s != nullptr ? *s : "";
}

absl::StatusOr<GgufInfo> ReadGgufInfo(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  const auto end = in.tellg();
  in.seekg(0);
  Reader r(path, &in, end < 0 ? 0 : static_cast<uint64_t>(end));
  char magic[4];
  ACCELSEL_RETURN_IF_ERROR(r.Bytes(magic, 4));
  if (std::memcmp(magic, "GGUF", 4) != 0) return r.Error("not a GGUF file (magic is not \"GGUF\")");
  GgufInfo info;
  ACCELSEL_ASSIGN_OR_RETURN(info.version, r.Pod<uint32_t>());
  // Version 1 had 32-bit counts and is long gone; 2 and 3 share this layout (3 adds big-endian files, which have
  // another version number when read little-endian, so they are refused here).
  if (info.version != 2 && info.version != 3) {
    return r.Error(absl::StrCat("GGUF version ", info.version, " (readable: 2, 3)"));
  }
  ACCELSEL_ASSIGN_OR_RETURN(info.tensor_count, r.Pod<uint64_t>());
  ACCELSEL_ASSIGN_OR_RETURN(const uint64_t kv_count, r.Pod<uint64_t>());
  for (uint64_t i = 0; i < kv_count; ++i) {
    ACCELSEL_ASSIGN_OR_RETURN(const std::string key, r.String());
    ACCELSEL_ASSIGN_OR_RETURN(const uint32_t type, r.Pod<uint32_t>());
    if (type == kArray) {
      ACCELSEL_RETURN_IF_ERROR(ReadArray(r, key, &info));
    } else {
      ACCELSEL_RETURN_IF_ERROR(ReadScalar(r, type, key, &info));
    }
  }
  for (uint64_t t = 0; t < info.tensor_count; ++t) {
    ACCELSEL_ASSIGN_OR_RETURN(const std::string name, r.String());
    ACCELSEL_ASSIGN_OR_RETURN(const uint32_t dims, r.Pod<uint32_t>());
    if (dims > kMaxDims) return r.Error(absl::StrCat("tensor ", name, ": ", dims, " dimensions"));
    uint64_t elements = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      ACCELSEL_ASSIGN_OR_RETURN(const uint64_t n, r.Pod<uint64_t>());
      if (n != 0 && elements > UINT64_MAX / n) return r.Error(absl::StrCat("tensor ", name, ": shape overflows"));
      elements *= n;
    }
    ACCELSEL_RETURN_IF_ERROR(r.Skip(sizeof(uint32_t) + sizeof(uint64_t)));  // ggml type, data offset
    info.parameters += elements;
  }
  return info;
}

std::string WeightDtypeName(uint64_t file_type) {
  switch (file_type) {
    case 0: return "fp32";
    case 1: return "fp16";
    case 2: return "q4_0";
    case 3: return "q4_1";
    case 7: return "q8_0";
    case 8: return "q5_0";
    case 9: return "q5_1";
    case 10: return "q2_k";
    case 11: return "q3_k_s";
    case 12: return "q3_k_m";
    case 13: return "q3_k_l";
    case 14: return "q4_k_s";
    case 15: return "q4_k_m";
    case 16: return "q5_k_s";
    case 17: return "q5_k_m";
    case 18: return "q6_k";
    case 32: return "bf16";
    default: return "";
  }
}

v1::ModelDescriptor DescribeModel(const GgufInfo& info, const std::string& name) {
  v1::ModelDescriptor m;
  m.set_name(name);
  const std::string arch = info.Str("general.architecture");
  m.set_family(arch);
  m.set_parameters_b(static_cast<double>(info.parameters) / 1e9);
  auto u32 = [&](const std::string& key, uint64_t fallback = 0) {
    return static_cast<uint32_t>(std::min<uint64_t>(info.Uint(arch + "." + key, fallback), UINT32_MAX));
  };
  m.set_layers(u32("block_count"));
  m.set_hidden_size(u32("embedding_length"));
  m.set_attention_heads(u32("attention.head_count"));
  // Without the key llama.cpp takes KV heads = heads (no grouping).
  m.set_kv_heads(u32("attention.head_count_kv", m.attention_heads()));
  m.set_experts(u32("expert_count"));
  m.set_active_experts(u32("expert_used_count"));
  if (info.values.count("general.file_type") > 0) m.set_weight_dtype(WeightDtypeName(info.Uint("general.file_type")));
  return m;
}

}  // namespace accelsel::node
