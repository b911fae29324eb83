// The one stable hash: the same value in every process, build and release (unlike absl::Hash, which is seeded
// per process). Feature hashing inside model blobs, context keys in the store and the held-out split depend on it.
#ifndef ACCELSEL_UTIL_HASH_H_
#define ACCELSEL_UTIL_HASH_H_

#include <cstdint>
#include <string_view>

namespace accelsel::util {

// FNV-1a over the bytes, seeded, with a final avalanche so that `h % small_n` uses every bit.
uint64_t StableHash(std::string_view s, uint64_t seed = 0);

}  // namespace accelsel::util

#endif  // ACCELSEL_UTIL_HASH_H_
