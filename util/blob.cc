// Blob framing for persisted models; see blob.h.
#include "util/blob.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "util/hash.h"

namespace accelsel::util {

void ByteWriter::PutU32(uint32_t v) {
  for (int i = 0; i < 4; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void ByteWriter::PutU64(uint64_t v) {
  for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void ByteWriter::PutF64(double v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(bits));
  PutU64(bits);
}
void ByteWriter::PutString(std::string_view s) {
  PutU64(s.size());
  buf_.append(s.data(), s.size());
}

bool ByteReader::Take(size_t n, const char** p) {
  if (n > data_.size() - pos_) {
    pos_ = data_.size();
    return false;
  }
  *p = data_.data() + pos_;
  pos_ += n;
  return true;
}
bool ByteReader::GetU32(uint32_t* v) {
  const char* p = nullptr;
  if (!Take(4, &p)) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return true;
}
bool ByteReader::GetU64(uint64_t* v) {
  const char* p = nullptr;
  if (!Take(8, &p)) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) *v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return true;
}
bool ByteReader::GetF64(double* v) {
  uint64_t bits = 0;
  if (!GetU64(&bits)) return false;
  std::memcpy(v, &bits, sizeof(bits));
  return true;
}
bool ByteReader::GetString(std::string* s) {
  uint64_t n = 0;
  const char* p = nullptr;
  if (!GetU64(&n) || !Take(n, &p)) return false;
  s->assign(p, n);
  return true;
}

uint64_t Checksum64(std::string_view data) {
  // FNV-1a over the bytes, then a final mix of its own (stored checksums depend on it): catches truncation, bit
  // flips and reordering.
  uint64_t h = Fnv1a64(data, kStableHashBasis);
  h ^= data.size();
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 32;
  return h;
}

std::string SealBlob(std::string_view magic8, uint32_t format, std::string_view payload) {
  ByteWriter w;
  std::string out(magic8.substr(0, 8));
  out.resize(8, '\0');
  w.PutU32(format);
  w.PutU64(payload.size());
  w.PutU64(Checksum64(payload));
  out += w.bytes();
  out.append(payload.data(), payload.size());
  return out;
}

absl::StatusOr<std::string_view> OpenBlob(std::string_view blob, std::string_view magic8, uint32_t max_format,
                                          uint32_t* format) {
  constexpr size_t kHeader = 8 + 4 + 8 + 8;
  if (blob.size() < kHeader) return absl::DataLossError("model blob: truncated header");
  std::string magic(magic8.substr(0, 8));
  magic.resize(8, '\0');
  if (blob.substr(0, 8) != magic) return absl::DataLossError("model blob: bad magic");
  ByteReader r(blob.substr(8, kHeader - 8));
  uint32_t fmt = 0;
  uint64_t len = 0, sum = 0;
  r.GetU32(&fmt);
  r.GetU64(&len);
  r.GetU64(&sum);
  if (fmt == 0 || fmt > max_format) {
    return absl::FailedPreconditionError(absl::StrCat("model blob: unsupported format ", fmt));
  }
  if (len != blob.size() - kHeader) return absl::DataLossError("model blob: length mismatch");
  const std::string_view payload = blob.substr(kHeader);
  if (Checksum64(payload) != sum) return absl::DataLossError("model blob: checksum mismatch");
  *format = fmt;
  return payload;
}

}  // namespace accelsel::util
