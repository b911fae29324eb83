// gRPC server interceptors: every call to the server passes them, including those of gRPC's own services (health,
// reflection, channelz) and calls to methods that no service has, which no handler of ours ever sees.
//
// Thread safety: gRPC calls the factories from any thread at once; they hold only pointers fixed at construction.
// An interceptor belongs to one call; a stream's read and write batches may run its hooks on two threads at once,
// so the hooks only touch thread-safe series and members written before the call's first batch (the refusal of
// OperatorOnlyInterceptorFactory is decided on the call's first batch, before its handler can send anything).
// Ownership: the server's grpc::Server owns the factories (ServerBuilder::experimental().SetInterceptorCreators)
// and each call its interceptors; the factories borrow the Metrics and the AccessControl, which outlive the
// grpc::Server.
#ifndef ACCELSEL_SERVER_INTERCEPTORS_H_
#define ACCELSEL_SERVER_INTERCEPTORS_H_

#include <string>

#include "grpcpp/support/server_interceptor.h"
#include "server/access.h"
#include "server/metrics.h"

namespace accelsel::server {

// grpc_server_started_total, _handled_total, _handling_seconds and _msg_received/_msg_sent_total of every call
// (server/metrics.h, GrpcMethodSeries): one pre-resolved series set per call, found by a single lookup of the
// method's path when the call starts.
class MetricsInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics* metrics_;
};

// Lets only operators call the methods under `path_prefix` ("/grpc.channelz.v1.Channelz/"): gRPC's own services
// cannot call AccessControl themselves. An interceptor cannot stop a handler from running, so a refused call's
// answer is dropped before it is sent and the call ends with AccessControl::AdmitOperator's refusal
// (UNAUTHENTICATED or PERMISSION_DENIED). Unary methods only: a stream's messages could be sent before the refusal.
// Registered before MetricsInterceptorFactory, so that the metrics count the refusal's code.
class OperatorOnlyInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  OperatorOnlyInterceptorFactory(const AccessControl* access, std::string path_prefix)
      : access_(access), path_prefix_(std::move(path_prefix)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  const AccessControl* access_;
  std::string path_prefix_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_INTERCEPTORS_H_
