// libFuzzer target: the JSON the CLI reads — a TaskContext file (client/cli_args.h ParseTaskContextJson) and
// RunReport lines (protobuf JsonStringToMessage with the CLI's options) — and validation of what parses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "accelsel/v1/accelsel.pb.h"
#include "client/cli_args.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/json_util.h"
#include "server/validate.h"

// Protobuf logs every invalid UTF-8 string it parses; silence it so the fuzzer spends its time fuzzing.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const accelsel::server::ValidationLimits limits;
  auto context = accelsel::client::cli::ParseTaskContextJson(text);
  if (context.ok()) (void)accelsel::server::ValidateContext("context", *context, limits);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  accelsel::v1::RunReport report;
  if (google::protobuf::util::JsonStringToMessage(text, &report, options).ok()) {
    (void)accelsel::server::ValidateRunReport(report, limits);
    std::string back;
    (void)google::protobuf::util::MessageToJsonString(report, &back);
  }
  return 0;
}
