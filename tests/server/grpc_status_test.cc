// The one absl -> gRPC status conversion: the code is kept, short messages pass unchanged, long ones are cut.
#include "server/grpc_status.h"

#include <string>

#include "absl/status/status.h"
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

}  // namespace
}  // namespace accelsel::server
