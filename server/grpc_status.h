// The one place where absl::Status becomes grpc::Status: the server core (ServiceCore, AccessControl, validation,
// storage) returns absl::Status only, and server/services.cc converts each answer here once.
//
// Rich errors follow the gRPC convention (docs/API.md, "Error details"): the core attaches typed details to its
// absl::Status as payloads keyed by their Any type URL — google.rpc.BadRequest (InvalidField) on INVALID_ARGUMENT,
// google.rpc.RetryInfo (WithRetryDelay) on RESOURCE_EXHAUSTED — and ToGrpc sends them as a serialized
// google.rpc.Status (same code and message) in the grpc::Status's error details, the binary trailer
// grpc-status-details-bin.
#ifndef ACCELSEL_SERVER_GRPC_STATUS_H_
#define ACCELSEL_SERVER_GRPC_STATUS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"

namespace accelsel::server {

// Longest status message sent to a client. Messages name a field and a rule, so they are short; a message built
// from a peer's input (an id, a parse error) is cut here so that no answer echoes an unbounded string back.
inline constexpr size_t kMaxStatusMessageBytes = 1024;
// Longest field path and description of a field violation: with the message they stay well inside gRPC's 8 KiB
// default limit on the trailers a client accepts.
inline constexpr size_t kMaxViolationBytes = 512;

// Type URLs of the details (Any's "type.googleapis.com/" + full message name, as standard clients expect).
inline constexpr absl::string_view kBadRequestTypeUrl = "type.googleapis.com/google.rpc.BadRequest";
inline constexpr absl::string_view kRetryInfoTypeUrl = "type.googleapis.com/google.rpc.RetryInfo";

// INVALID_ARGUMENT "<field>: <description>" carrying google.rpc.BadRequest with that one field violation.
// Every request rule the server checks reports through this, so every INVALID_ARGUMENT it answers names the field
// both in the message and in the details.
absl::Status InvalidField(absl::string_view field, absl::string_view description);
// `status` carrying google.rpc.BadRequest with the one field violation {field, description} (for a message of
// another shape than InvalidField's).
absl::Status WithFieldViolation(absl::Status status, absl::string_view field, absl::string_view description);
// `status` carrying google.rpc.RetryInfo with `delay` (for RESOURCE_EXHAUSTED: when to try again).
absl::Status WithRetryDelay(absl::Status status, absl::Duration delay);

// The only conversion from absl::Status to grpc::Status: the same code, the message cut at kMaxStatusMessageBytes
// (ending in "..." when cut, never inside a UTF-8 character), and the google.rpc payloads of `s`, if any, as the
// serialized google.rpc.Status in the error details. Payloads of other type URLs stay on the server.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_GRPC_STATUS_H_
