// The one stable hash (see hash.h). Changing it changes every persisted model, run id and context key.
#include "util/hash.h"

namespace accelsel::util {

uint64_t Fnv1a64(std::string_view s, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t StableHash(std::string_view s, uint64_t seed) {
  uint64_t h = Fnv1a64(s, kStableHashBasis ^ (seed * 0x9E3779B97F4A7C15ULL));
  // Final avalanche so that bucket = h % small_n uses all bits.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

}  // namespace accelsel::util
