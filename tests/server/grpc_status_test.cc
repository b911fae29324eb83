// The one absl -> gRPC status conversion: the code is kept, short messages pass unchanged, long ones are cut, and
// google.rpc payloads (BadRequest, RetryInfo) go out as a google.rpc.Status in the error details.
#include "server/grpc_status.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace accelsel::server {
namespace {

TEST(GrpcStatusTest, KeepsCodeAndShortMessage) {
  EXPECT_TRUE(ToGrpc(absl::OkStatus()).ok());
  const grpc::Status s = ToGrpc(absl::InvalidArgumentError("context.model.name: must not be empty"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "context.model.name: must not be empty");
  EXPECT_EQ(ToGrpc(absl::ResourceExhaustedError("x")).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpc(absl::UnauthenticatedError("x")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(GrpcStatusTest, CutsLongMessagesAtTheCap) {
  const std::string exact(kMaxStatusMessageBytes, 'a');
  EXPECT_EQ(ToGrpc(absl::NotFoundError(exact)).error_message(), exact);
  const grpc::Status cut = ToGrpc(absl::NotFoundError(std::string(10 * kMaxStatusMessageBytes, 'b')));
  EXPECT_EQ(cut.error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(cut.error_message().size(), kMaxStatusMessageBytes);
  EXPECT_EQ(cut.error_message().substr(kMaxStatusMessageBytes - 3), "...");
  EXPECT_EQ(cut.error_message()[0], 'b');
}

// The details of `s`, which must parse as a google.rpc.Status with the same code and message.
google::rpc::Status DetailsOf(const grpc::Status& s) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.code(), s.error_code());
  EXPECT_EQ(details.message(), s.error_message());
  return details;
}

TEST(GrpcStatusTest, NoDetailsWithoutRpcPayloads) {
  EXPECT_EQ(ToGrpc(absl::InvalidArgumentError("x")).error_details(), "");
  absl::Status own = absl::NotFoundError("x");
  own.SetPayload("type.example.com/internal.Detail", absl::Cord("secret"));  // not ours to send
  EXPECT_EQ(ToGrpc(own).error_details(), "");
}

TEST(GrpcStatusTest, InvalidFieldCarriesABadRequest) {
  const absl::Status st = InvalidField("context.workload.batch_size", "must be >= 1 (got 0)");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "context.workload.batch_size: must be >= 1 (got 0)");
  const grpc::Status s = ToGrpc(st);
  EXPECT_EQ(s.error_message(), "context.workload.batch_size: must be >= 1 (got 0)");
  const google::rpc::Status details = DetailsOf(s);
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.BadRequest");
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "context.workload.batch_size");
  EXPECT_EQ(bad.field_violations(0).description(), "must be >= 1 (got 0)");
}

TEST(GrpcStatusTest, RetryDelayCarriesARetryInfo) {
  const grpc::Status s = ToGrpc(WithRetryDelay(absl::ResourceExhaustedError("slow down"), absl::Milliseconds(2500)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  const google::rpc::Status details = DetailsOf(s);
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.RetryInfo");
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(details.details(0).UnpackTo(&retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 2);
  EXPECT_EQ(retry.retry_delay().nanos(), 500000000);
}

// A long message is cut in the status and in the details alike, never inside a UTF-8 character (a client's proto3
// parser refuses a string that is not UTF-8); the violation's parts are bounded too.
TEST(GrpcStatusTest, CutsDetailsAtUtf8Boundaries) {
  std::string name;
  while (name.size() < 4 * kMaxStatusMessageBytes) name += "\xc3\xa9";  // é, two bytes each
  // A 16-byte prefix puts both cuts (at 1021 and 509 bytes) inside a character.
  const grpc::Status s = ToGrpc(InvalidField("context.extra[\"x" + name + "\"]", "must be finite"));
  EXPECT_LE(s.error_message().size(), kMaxStatusMessageBytes);
  EXPECT_EQ(s.error_message().substr(s.error_message().size() - 3), "...");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));  // parsing checks the strings' UTF-8
  EXPECT_EQ(details.message(), s.error_message());
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  EXPECT_LE(bad.field_violations(0).field().size(), kMaxViolationBytes);
  EXPECT_EQ(bad.field_violations(0).description(), "must be finite");
}

}  // namespace
}  // namespace accelsel::server
