// Test helper: what the store's decision log holds, counted the way its bytes bound counts (keys + values).
#ifndef ACCELSEL_TESTS_TEST_UTIL_DECISION_LOG_SIZE_H_
#define ACCELSEL_TESTS_TEST_UTIL_DECISION_LOG_SIZE_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage/telemetry_store.h"

namespace accelsel::testing {

struct DecisionLogSize {
  uint64_t records = 0;
  uint64_t bytes = 0;  // keys + values
};

inline absl::StatusOr<DecisionLogSize> StoredDecisionLogSize(storage::TelemetryStore& store) {
  DecisionLogSize size;
  absl::Status st = store.ScanDecisions("", "", /*reverse=*/false, [&](std::string_view key, std::string_view value) {
    size.bytes += key.size() + value.size();
    ++size.records;
    return true;
  });
  if (!st.ok()) return st;
  return size;
}

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_TEST_UTIL_DECISION_LOG_SIZE_H_
