// The one place where absl::Status becomes grpc::Status.
#ifndef ACCELSEL_SERVER_GRPC_STATUS_H_
#define ACCELSEL_SERVER_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace accelsel::server {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_GRPC_STATUS_H_
