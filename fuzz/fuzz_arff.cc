// libFuzzer target: the ARFF parser used for ASlib scenarios (eval/arff.h).
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "eval/arff.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto table = accelsel::eval::ParseArff(text);
  if (table.ok()) {
    for (const auto& row : table->rows) {
      if (row.size() != table->attributes.size()) __builtin_trap();  // every row has one value per attribute
    }
  }
  return 0;
}
