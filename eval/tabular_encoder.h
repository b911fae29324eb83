// The generic tabular encoder behind `accelsel eval --csv`: a measured table's task and strategy columns become
// float vectors for the learners, without knowing what the columns mean.
#ifndef ACCELSEL_EVAL_TABULAR_ENCODER_H_
#define ACCELSEL_EVAL_TABULAR_ENCODER_H_

#include <cstddef>
#include <string>
#include <vector>

namespace accelsel::eval {

// Each column is typed automatically (numeric if every present value
// parses as a number), numerics spanning more than an order of magnitude and all positive are log-scaled,
// categoricals are one-hot up to kMaxOneHot levels and hashed beyond. Fitting looks at feature values only,
// never at targets.
class TabularEncoder {
 public:
  static constexpr int kMaxOneHot = 32;
  static constexpr int kHashBuckets = 32;

  // `columns[j][i]` is row i of column j; "" = missing.
  void Fit(const std::vector<std::string>& names, const std::vector<std::vector<std::string>>& columns);
  size_t width() const { return width_; }
  // Encodes row `row` of `columns` (same layout as Fit), appending width() floats.
  void Encode(const std::vector<std::vector<std::string>>& columns, size_t row, std::vector<float>* out) const;
  bool is_numeric(size_t col) const { return cols_[col].numeric; }

 private:
  struct Column {
    std::string name;
    bool numeric = false;
    bool log_scale = false;
    std::vector<std::string> levels;  // one-hot levels; empty + !numeric = hashed
    size_t offset = 0;
    size_t width = 0;
  };
  std::vector<Column> cols_;
  size_t width_ = 0;
};

}  // namespace accelsel::eval

#endif  // ACCELSEL_EVAL_TABULAR_ENCODER_H_
