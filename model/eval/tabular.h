// Robust readers for the evaluator's inputs: CSV (header row, ',' separated) and ARFF (ASlib). Both accept
// values quoted with ' or ", doubled-quote and backslash escapes, '?' for missing, comment and blank lines.
// Bad input is reported as a Status with a line number; the parsers never crash or throw.
#ifndef ACCELSEL_MODEL_EVAL_TABULAR_H_
#define ACCELSEL_MODEL_EVAL_TABULAR_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace accelsel::model::eval {

struct Field {
  std::string value;
  bool quoted = false;
};

// Splits one record starting at `*pos` in `text`; advances `*pos` past the record's line end. Quoted values
// may span lines. `line` is incremented per newline consumed (for messages).
absl::StatusOr<std::vector<Field>> SplitRecord(absl::string_view text, size_t* pos, char delimiter, int* line);

struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each row has header.size() values; "" = empty
  int Column(absl::string_view name) const;     // -1 if absent (exact, then case-insensitive match)
};

// Lines starting with '#' and blank lines are skipped. Rows with a different field count are an error.
absl::StatusOr<CsvTable> ParseCsv(absl::string_view text);
absl::StatusOr<CsvTable> ReadCsvFile(const std::string& path);

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
  int Column(absl::string_view name) const;  // -1 if absent (case-insensitive)
};

absl::StatusOr<ArffTable> ParseArff(absl::string_view text);
absl::StatusOr<ArffTable> ReadArffFile(const std::string& path);

absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace accelsel::model::eval

#endif  // ACCELSEL_MODEL_EVAL_TABULAR_H_
