// The generic tabular encoder (see tabular_encoder.h).
#include "eval/tabular_encoder.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "util/csv.h"
#include "util/hash.h"

namespace accelsel::eval {

using util::ParseNumber;
using util::StableHash;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace

using util::ParseNumber;
using util::StableHash;

void TabularEncoder::Fit(const std::vector<std::string>& names, const std::vector<std::vector<std::string>>& columns) {
  cols_.clear();
  width_ = 0;
  for (size_t j = 0; j < columns.size(); ++j) {
    Column col;
    col.name = j < names.size() ? names[j] : "";
    bool all_numeric = true;
    bool any = false;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    std::set<std::string> levels;
    for (const std::string& v : columns[j]) {
      const absl::string_view t = absl::StripAsciiWhitespace(v);
      if (t.empty() || t == "?") continue;
      any = true;
      double x = 0;
      if (ParseNumber(SV(t), &x)) {
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      } else {
        all_numeric = false;
      }
      if (levels.size() <= static_cast<size_t>(kMaxOneHot)) levels.insert(std::string(t));
    }
    col.numeric = any && all_numeric;
    if (col.numeric) {
      col.log_scale = lo > 0 && hi / lo > 10.0;
      col.width = 1;
    } else if (levels.size() <= static_cast<size_t>(kMaxOneHot)) {
      col.levels.assign(levels.begin(), levels.end());
      col.width = std::max<size_t>(1, col.levels.size());
    } else {
      col.width = kHashBuckets;
    }
    col.offset = width_;
    width_ += col.width;
    cols_.push_back(std::move(col));
  }
}

void TabularEncoder::Encode(const std::vector<std::vector<std::string>>& columns, size_t row,
                            std::vector<float>* out) const {
  const size_t base = out->size();
  out->resize(base + width_, 0.0f);
  for (size_t j = 0; j < cols_.size() && j < columns.size(); ++j) {
    const Column& col = cols_[j];
    float* dst = out->data() + base + col.offset;
    const absl::string_view v = row < columns[j].size() ? absl::StripAsciiWhitespace(columns[j][row]) : "";
    if (col.numeric) {
      double x = 0;
      if (!ParseNumber(SV(v), &x)) {
        dst[0] = kNaN;
      } else {
        dst[0] = static_cast<float>(col.log_scale ? std::log(std::max(x, 1e-300)) : x);
      }
    } else if (!col.levels.empty()) {
      auto it = std::lower_bound(col.levels.begin(), col.levels.end(), v);
      if (it != col.levels.end() && *it == v) dst[it - col.levels.begin()] = 1.0f;
    } else if (!v.empty()) {
      dst[StableHash(SV(v), 31) % kHashBuckets] = 1.0f;
    }
  }
}

}  // namespace accelsel::eval
