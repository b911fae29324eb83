// A node's program built against the installed accelsel client (tests/client/install_test.sh): options are checked,
// and a call to a port where nothing listens fails UNAVAILABLE or DEADLINE_EXCEEDED within its deadline. Prints
// "accelsel consumer ok: ..." on success.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "google/rpc/error_details.pb.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "accelsel consumer FAILED: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  accelsel::client::ClientOptions options;
  options.target = "127.0.0.1:1";  // nothing listens on port 1: the connection is refused
  options.deadline_ms = 3000;
  accelsel::client::ClientOptions bad = options;
  bad.deadline_ms = 0;
  if (accelsel::client::ValidateClientOptions(bad).code() != absl::StatusCode::kInvalidArgument) {
    return Fail("deadline_ms = 0 was not INVALID_ARGUMENT");
  }
  if (absl::Status valid = accelsel::client::ValidateClientOptions(options); !valid.ok()) {
    return Fail("ValidateClientOptions: " + valid.ToString());
  }
  absl::StatusOr<std::unique_ptr<accelsel::client::Client>> client = accelsel::client::Client::Create(options);
  if (!client.ok()) return Fail("Client::Create: " + client.status().ToString());

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<accelsel::v1::ListStrategiesResponse> strategies = (*client)->ListStrategies();
  const auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  const absl::StatusCode code = strategies.status().code();
  if (code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kDeadlineExceeded) {
    return Fail("ListStrategies: " + strategies.status().ToString());
  }
  if (elapsed_ms > options.deadline_ms + 2000) return Fail("ListStrategies took " + std::to_string(elapsed_ms) + " ms");

  // The google.rpc details an error carries parse with the installed headers.
  google::rpc::BadRequest details;
  details.add_field_violations()->set_field("context");
  if (details.ByteSizeLong() == 0) return Fail("google.rpc.BadRequest did not serialize");

  std::printf("accelsel consumer ok: ListStrategies %s after %lld ms\n", absl::StatusCodeToString(code).c_str(),
              static_cast<long long>(elapsed_ms));
  return 0;
}
