// libFuzzer target: request validation (server/validate.h) on arbitrary wire bytes, as a RunReport and as a
// SelectAcceleratorRequest; dropping unknown fields; and the same bytes as a --auth_tokens file and a listen address
// (server/auth_tokens.h). Nothing may crash, whatever passes validation must convert to plain records, and a
// report stripped of unknown fields must hold none.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "accelsel/v1/accelsel.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "model/observed_stats.h"
#include "proto/convert.h"
#include "server/auth_tokens.h"
#include "server/validate.h"

// Protobuf logs every invalid UTF-8 string it parses; silence it so the fuzzer spends its time fuzzing.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const accelsel::server::ValidationLimits limits;
  accelsel::v1::RunReport report;
  if (report.ParseFromArray(data, static_cast<int>(size))) {
    accelsel::server::StripUnknownFields(&report);
    if (accelsel::server::StripUnknownFields(&report)) __builtin_trap();  // the first pass left some behind
    if (accelsel::server::ValidateRunReport(report, limits).ok()) {
      const accelsel::model::RunRecord rec = accelsel::FromProto(report);
      (void)accelsel::model::ContextKey(rec.context);
    }
  }
  accelsel::v1::SelectAcceleratorRequest select;
  if (select.ParseFromArray(data, static_cast<int>(size))) {
    if (accelsel::server::ValidateSelectRequest(select, limits).ok()) {
      (void)accelsel::model::ContextKey(accelsel::FromProto(select.context()));
    }
  }
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)accelsel::server::ValidateId("id", text, limits);
  if (auto tokens = accelsel::server::ParseAuthTokens(text); tokens.ok()) {
    for (const auto& [token, entry] : *tokens) {
      if (!accelsel::server::ValidateId("node id", entry.node_id, limits).ok()) __builtin_trap();
    }
  }
  (void)accelsel::server::IsLoopbackAddress(text);
  return 0;
}
