// libFuzzer target: the CSV reader (util/csv.h) and the generic CSV problem loader, plus
// ASlib's description.txt reader.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "eval/loaders.h"
#include "util/csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto table = accelsel::util::ParseCsv(text);
  if (table.ok() && table->header.size() >= 3) {
    for (const auto& row : table->rows) {
      if (row.size() != table->header.size()) __builtin_trap();  // the documented invariant
    }
    accelsel::eval::CsvSpec spec;
    spec.task_cols = {table->header[0]};
    spec.strategy_cols = {table->header[1]};
    spec.target_col = table->header[2];
    (void)accelsel::eval::LoadCsvProblem(*table, spec);
  }
  (void)accelsel::eval::ParseAslibDescription(text);
  return 0;
}
