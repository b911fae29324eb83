// Self-checking binary blobs for persisted models: magic, format version, payload length and a 64-bit checksum
// around a payload written with ByteWriter. A blob that fails any check is refused with a Status, never parsed.
#ifndef ACCELSEL_UTIL_BLOB_H_
#define ACCELSEL_UTIL_BLOB_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace accelsel::util {

class ByteWriter {
 public:
  void PutU32(uint32_t v);
  void PutU64(uint64_t v);
  void PutF64(double v);
  void PutString(std::string_view s);  // length-prefixed
  const std::string& bytes() const { return buf_; }

 private:
  std::string buf_;
};

// Every Get returns false (and leaves the reader failed) on truncated input.
class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}
  bool GetU32(uint32_t* v);
  bool GetU64(uint64_t* v);
  bool GetF64(double* v);
  bool GetString(std::string* s);
  bool done() const { return pos_ == data_.size(); }

 private:
  bool Take(size_t n, const char** p);
  std::string_view data_;
  size_t pos_ = 0;
};

uint64_t Checksum64(std::string_view data);

// magic (8 bytes) | format u32 | payload length u64 | checksum u64 | payload
std::string SealBlob(std::string_view magic8, uint32_t format, std::string_view payload);
// Returns the payload if magic, format (≤ max_format) and checksum hold; `format` receives the blob's format.
absl::StatusOr<std::string_view> OpenBlob(std::string_view blob, std::string_view magic8, uint32_t max_format,
                                          uint32_t* format);

}  // namespace accelsel::util

#endif  // ACCELSEL_UTIL_BLOB_H_
