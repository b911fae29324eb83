// The one stable hash: the same value in every process, build and release (unlike absl::Hash and std::hash, which
// may differ per process or build). Feature hashing inside model blobs, context keys, the held-out split and run ids
// depend on it.
#ifndef ACCELSEL_UTIL_HASH_H_
#define ACCELSEL_UTIL_HASH_H_

#include <cstdint>
#include <string_view>

namespace accelsel::util {

// FNV-1a's offset basis, 14695981039346656037.
inline constexpr uint64_t kFnv1aOffsetBasis = 0xcbf29ce484222325ULL;
// The basis StableHash, the held-out split and blob checksums were first written with: FNV's with its last digit
// lost. Their values are persisted (model blobs, stored checksums, which contexts were held out), so it stays.
inline constexpr uint64_t kStableHashBasis = 1469598103934665603ULL;

// FNV-1a, 64 bit, over the bytes, starting from `basis`. Raw: its low bits are weak for `h % small_n`. Used as it is
// where its values are persisted already (run ids of imported tables, the held-out split, blob checksums).
uint64_t Fnv1a64(std::string_view s, uint64_t basis = kFnv1aOffsetBasis);

// FNV-1a over the bytes, seeded, with a final avalanche so that `h % small_n` uses every bit.
uint64_t StableHash(std::string_view s, uint64_t seed = 0);

}  // namespace accelsel::util

#endif  // ACCELSEL_UTIL_HASH_H_
