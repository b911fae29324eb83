// StrategyEncodingCache: lookup under a reader lock, encode outside any lock, publish under the writer lock.
#include "model/strategy_encoding_cache.h"

#include "model/features.h"

namespace accelsel::model {

uint64_t StrategyEncodingCache::Append(const Strategy& s, std::vector<float>* out) const {
  std::shared_ptr<const Entry> hit;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = entries_.find(s.id);
    if (it != entries_.end()) hit = it->second;
  }
  if (hit != nullptr && hit->components == s.components) {
    out->insert(out->end(), hit->features.begin(), hit->features.end());
    return hit->id_hash;
  }
  auto entry = std::make_shared<Entry>();
  entry->components = s.components;
  EncodeStrategy(s, &entry->features);
  entry->id_hash = StableHash(s.id);
  out->insert(out->end(), entry->features.begin(), entry->features.end());
  const uint64_t id_hash = entry->id_hash;
  absl::MutexLock lock(&mu_);
  if (entries_.size() < kMaxEntries || entries_.contains(s.id)) entries_[s.id] = std::move(entry);
  return id_hash;
}

size_t StrategyEncodingCache::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace accelsel::model
