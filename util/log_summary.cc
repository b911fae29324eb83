// IntervalSummary: counts by key, one line per interval.
#include "util/log_summary.h"

#include "absl/strings/str_cat.h"

namespace accelsel::log {

IntervalSummary::IntervalSummary(IntervalSummaryOptions options) : options_(std::move(options)) {
  if (options_.interval > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

IntervalSummary::~IntervalSummary() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  Flush();
}

void IntervalSummary::Add(std::string_view key, uint64_t n) {
  if (!Enabled(options_.level) || n == 0) return;
  absl::MutexLock lock(&mu_);
  total_ += n;
  if (options_.key_field.empty()) return;
  const absl::string_view k(key.data(), key.size());
  auto it = by_key_.find(k);
  if (it != by_key_.end()) {
    it->second += n;
  } else if (by_key_.size() < options_.max_keys) {
    by_key_.emplace(k, n);
  } else {
    capped_ = true;
  }
}

bool IntervalSummary::Flush() {
  uint64_t total;
  bool capped;
  absl::flat_hash_map<std::string, uint64_t> by_key;
  {
    absl::MutexLock lock(&mu_);
    if (total_ == 0) return false;
    total = std::exchange(total_, 0);
    capped = std::exchange(capped_, false);
    by_key.swap(by_key_);  // the next interval starts with an empty map: memory is released every interval
  }
  std::string_view top_key;
  uint64_t top_count = 0;
  for (const auto& [key, count] : by_key) {
    if (count > top_count || (count == top_count && key < top_key)) {
      top_key = key;
      top_count = count;
    }
  }
  const std::string& k = options_.key_field;
  const std::string keys_name = absl::StrCat(k, "s");
  const std::string top_name = absl::StrCat("top_", k);
  const std::string top_count_name = absl::StrCat("top_", k, "_", options_.count_field);
  const std::string capped_name = absl::StrCat(k, "s_capped");
  std::vector<Field> fields;
  fields.reserve(6 + options_.constant_fields.size());
  fields.emplace_back(options_.count_field, total);
  if (!k.empty()) {
    fields.emplace_back(keys_name, static_cast<uint64_t>(by_key.size()));
    fields.emplace_back(top_name, top_key);
    fields.emplace_back(top_count_name, top_count);
    fields.emplace_back(capped_name, capped);
  }
  fields.emplace_back("interval_s", absl::ToDoubleSeconds(options_.interval));
  for (const auto& [name, value] : options_.constant_fields) fields.emplace_back(name, value);
  WriteFields(options_.level, options_.event, fields);
  lines_written_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void IntervalSummary::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval)) return;
    }
    Flush();
  }
}

}  // namespace accelsel::log
