// libFuzzer target: request validation (server/validate.h) on arbitrary wire bytes, as a RunReport and as a
// SelectAcceleratorRequest. Validation must never crash, and whatever passes must convert to plain records.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "accelsel/v1/accelsel.pb.h"
#include "model/observed_stats.h"
#include "proto/convert.h"
#include "server/validate.h"
#include "google/protobuf/stubs/logging.h"

// Protobuf logs every invalid UTF-8 string it parses; silence it so the fuzzer spends its time fuzzing.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const accelsel::server::ValidationLimits limits;
  accelsel::v1::RunReport report;
  if (report.ParseFromArray(data, static_cast<int>(size))) {
    if (accelsel::server::ValidateRunReport(report, limits).ok()) {
      const accelsel::model::RunRecord rec = accelsel::FromProto(report);
      (void)accelsel::model::ExactContextKey(rec.context);
    }
  }
  accelsel::v1::SelectAcceleratorRequest select;
  if (select.ParseFromArray(data, static_cast<int>(size))) {
    if (accelsel::server::ValidateSelectRequest(select, limits).ok()) {
      (void)accelsel::model::ExactContextKey(accelsel::FromProto(select.context()));
    }
  }
  (void)accelsel::server::ValidateId("id", absl::string_view(reinterpret_cast<const char*>(data), size), limits);
  return 0;
}
