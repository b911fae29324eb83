// The ARFF reader for ASlib scenarios: @relation, @attribute (numeric, string, nominal, date) and dense @data rows,
// values quoted as in CSV (util/csv.h), '?' for missing, '%' comments. Bad input is a Status with a line number.
#ifndef ACCELSEL_EVAL_ARFF_H_
#define ACCELSEL_EVAL_ARFF_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace accelsel::eval {

struct ArffAttribute {
  enum class Type { kNumeric, kString, kNominal, kDate };
  std::string name;
  Type type = Type::kString;
  std::vector<std::string> levels;  // kNominal
};

struct ArffTable {
  std::string relation;
  std::vector<ArffAttribute> attributes;
  std::vector<std::vector<std::optional<std::string>>> rows;  // nullopt = '?'
  int Column(absl::string_view name) const;                   // -1 if absent (case-insensitive)
};

absl::StatusOr<ArffTable> ParseArff(absl::string_view text);
absl::StatusOr<ArffTable> ReadArffFile(const std::string& path);

}  // namespace accelsel::eval

#endif  // ACCELSEL_EVAL_ARFF_H_
