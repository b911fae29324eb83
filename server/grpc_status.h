// The one place where absl::Status becomes grpc::Status: the server core (ServiceCore, AccessControl, validation,
// storage) returns absl::Status only, and server/services.cc converts each answer here once.
#ifndef ACCELSEL_SERVER_GRPC_STATUS_H_
#define ACCELSEL_SERVER_GRPC_STATUS_H_

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace accelsel::server {

// Longest status message sent to a client. Messages name a field and a rule, so they are short; a message built
// from a peer's input (an id, a parse error) is cut here so that no answer echoes an unbounded string back.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// The only conversion from absl::Status to grpc::Status: the same code, the message cut at
// kMaxStatusMessageBytes (ending in "..." when cut).
inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  std::string message(s.message());
  if (message.size() > kMaxStatusMessageBytes) {
    message.resize(kMaxStatusMessageBytes - 3);
    message += "...";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::move(message));
}

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_GRPC_STATUS_H_
