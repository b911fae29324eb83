// absl::Status -> grpc::Status, with google.rpc details (see grpc_status.h).
#include "server/grpc_status.h"

#include <cstdint>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/any.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace accelsel::server {
namespace {

// Only these payloads are for the wire; any other (a library's own) stays on the server.
constexpr absl::string_view kRpcTypeUrlPrefix = "type.googleapis.com/google.rpc.";

// `text`, or its first bytes ending in "..." so that the whole is at most `max` bytes. The cut never falls inside
// a UTF-8 character: proto3 strings must be valid UTF-8, and a client's parser refuses the details otherwise.
std::string Cut(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t end = max - 3;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;  // a continuation byte
  return absl::StrCat(text.substr(0, end), "...");
}

}  // namespace

absl::Status WithFieldViolation(absl::Status status, absl::string_view field, absl::string_view description) {
  google::rpc::BadRequest details;
  google::rpc::BadRequest::FieldViolation* violation = details.add_field_violations();
  violation->set_field(Cut(field, kMaxViolationBytes));
  violation->set_description(Cut(description, kMaxViolationBytes));
  status.SetPayload(kBadRequestTypeUrl, absl::Cord(details.SerializeAsString()));
  return status;
}

absl::Status InvalidField(absl::string_view field, absl::string_view description) {
  return WithFieldViolation(absl::InvalidArgumentError(absl::StrCat(field, ": ", description)), field, description);
}

absl::Status WithRetryDelay(absl::Status status, absl::Duration delay) {
  google::rpc::RetryInfo details;
  const int64_t seconds = absl::IDivDuration(delay, absl::Seconds(1), &delay);
  details.mutable_retry_delay()->set_seconds(seconds);
  details.mutable_retry_delay()->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(delay)));
  status.SetPayload(kRetryInfoTypeUrl, absl::Cord(details.SerializeAsString()));
  return status;
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(s.code());
  const std::string message = Cut(s.message(), kMaxStatusMessageBytes);
  google::rpc::Status details;
  s.ForEachPayload([&details](absl::string_view type_url, const absl::Cord& payload) {
    if (!absl::StartsWith(type_url, kRpcTypeUrlPrefix)) return;
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(payload));
  });
  if (details.details().empty()) return grpc::Status(code, message);
  details.set_code(s.raw_code());
  details.set_message(message);
  return grpc::Status(code, message, details.SerializeAsString());
}

}  // namespace accelsel::server
