// StrategyEncodingCache: the feature encoding of each catalogue strategy, computed once. Encoding a strategy
// (component parsing, lower-casing, hashing) was ~5% of a SelectAccelerator's instructions for strings that never
// change; a MetaModel owns one, so a new model version starts with a fresh cache. Thread-safe.
#ifndef ACCELSEL_MODEL_STRATEGY_ENCODING_CACHE_H_
#define ACCELSEL_MODEL_STRATEGY_ENCODING_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "model/types.h"

namespace accelsel::model {

class StrategyEncodingCache {
 public:
  // Strategies remembered at most; past this, encodings are computed but not kept (the catalogue is expected to
  // be far smaller; ad-hoc strategies of a flood of reports must not grow memory without bound).
  static constexpr size_t kMaxEntries = 4096;

  // Appends EncodeStrategy(s) to `out` and returns StableHash(s.id): remembered when this id was encoded before
  // with exactly these components (a redefinition under the same id is encoded afresh and replaces the entry).
  uint64_t Append(const Strategy& s, std::vector<float>* out) const;
  size_t size() const;

 private:
  struct Entry {
    std::vector<std::pair<std::string, std::string>> components;
    std::vector<float> features;
    uint64_t id_hash = 0;
  };
  mutable absl::Mutex mu_;
  // Entries are immutable once published; a replacement swaps the shared_ptr, so a reader copies without the lock
  // held for longer than the lookup.
  mutable absl::flat_hash_map<std::string, std::shared_ptr<const Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_STRATEGY_ENCODING_CACHE_H_
