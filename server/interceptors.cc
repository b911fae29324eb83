// The metrics and operator-only interceptors.
#include "server/interceptors.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/grpc_status.h"

namespace accelsel::server {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::InterceptorBatchMethods;

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(Metrics* metrics, GrpcMethodSeries* series)
      : metrics_(metrics), series_(series), start_(std::chrono::steady_clock::now()) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      series_->started->Increment();
    }
    // The hook also runs for a read that found the stream's end: that one brought no message.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      series_->msg_received->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) series_->msg_sent->Increment();
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
      metrics_->GrpcHandled(series_, methods->GetSendStatus().error_code(), elapsed.count());
    }
    methods->Proceed();
  }

 private:
  Metrics* const metrics_;
  GrpcMethodSeries* const series_;
  const std::chrono::steady_clock::time_point start_;
};

class OperatorOnlyInterceptor final : public grpc::experimental::Interceptor {
 public:
  OperatorOnlyInterceptor(const AccessControl* access, absl::string_view service)
      : access_(access), service_(service) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      refusal_ = ToGrpc(access_->AdmitOperator(*methods->GetRecvInitialMetadata(), service_));
    }
    if (!refusal_.ok()) {
      // An empty buffer: the call then sends no message at all (grpc::internal::CallOpSendMessage skips it).
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
        methods->GetSerializedSendMessage()->Clear();
      }
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
        methods->ModifySendStatus(refusal_);
      }
    }
    methods->Proceed();
  }

 private:
  const AccessControl* const access_;
  const absl::string_view service_;  // points into the factory's path_prefix_
  grpc::Status refusal_;             // OK until the first batch decides
};

}  // namespace

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new MetricsInterceptor(metrics_, metrics_->GrpcMethod(info->method() ? info->method() : ""));
}

grpc::experimental::Interceptor* OperatorOnlyInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  if (info->method() == nullptr || !absl::StartsWith(info->method(), path_prefix_)) return nullptr;
  // "/grpc.channelz.v1.Channelz/" -> "grpc.channelz.v1.Channelz", for the refusal's message.
  absl::string_view service = path_prefix_;
  absl::ConsumePrefix(&service, "/");
  absl::ConsumeSuffix(&service, "/");
  return new OperatorOnlyInterceptor(access_, service);
}

}  // namespace accelsel::server
