// libFuzzer target: the evaluator's CSV parser (model/eval/tabular.h) and the generic CSV problem loader, plus
// ASlib's description.txt reader.
#include <cstddef>
#include <cstdint>
#include "absl/strings/string_view.h"

#include "model/eval/loaders.h"
#include "model/eval/tabular.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto table = accelsel::model::eval::ParseCsv(text);
  if (table.ok() && table->header.size() >= 3) {
    for (const auto& row : table->rows) {
      if (row.size() != table->header.size()) __builtin_trap();  // the documented invariant
    }
    accelsel::model::eval::CsvSpec spec;
    spec.task_cols = {table->header[0]};
    spec.strategy_cols = {table->header[1]};
    spec.target_col = table->header[2];
    (void)accelsel::model::eval::LoadCsvProblem(*table, spec);
  }
  (void)accelsel::model::eval::ParseAslibDescription(text);
  return 0;
}
