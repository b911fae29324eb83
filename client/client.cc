// Unary calls to accelsel with a deadline per call and retries with jittered exponential backoff.
#include "client/client.h"

#include <algorithm>
#include <chrono>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace accelsel::client {

absl::Status ValidateClientOptions(const ClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target is empty");
  if (options.deadline_ms <= 0) return absl::InvalidArgumentError("deadline_ms must be > 0");
  if (options.max_attempts < 1) return absl::InvalidArgumentError("max_attempts must be >= 1");
  if (options.initial_backoff_ms < 0 || options.max_backoff_ms < options.initial_backoff_ms) {
    return absl::InvalidArgumentError("need 0 <= initial_backoff_ms <= max_backoff_ms");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_root_ca_pem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_ca_pem;
    ssl.pem_cert_chain = options.tls_client_cert_pem;
    ssl.pem_private_key = options.tls_client_key_pem;
    creds = grpc::SslCredentials(ssl);
  }
  return grpc::CreateChannel(options.target, creds);
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

void AddAuthMetadata(const ClientOptions& options, grpc::ClientContext* context) {
  if (!options.bearer_token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options.bearer_token));
  }
}

absl::Duration RetryBackoff(const ClientOptions& options, int retry) {
  // Shift in steps so a large retry count cannot overflow.
  int64_t backoff_ms = options.initial_backoff_ms;
  for (int i = 0; i < retry && backoff_ms < options.max_backoff_ms; ++i) backoff_ms *= 2;
  backoff_ms = std::min(backoff_ms, options.max_backoff_ms);
  if (backoff_ms <= 0) return absl::ZeroDuration();
  thread_local absl::BitGen gen;
  const double fraction = absl::Uniform(gen, 0.5, 1.0);
  return absl::Milliseconds(static_cast<double>(backoff_ms) * fraction);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  if (auto s = ValidateClientOptions(options); !s.ok()) return s;
  return std::make_unique<Client>(options, MakeChannel(options));
}

Client::Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      channel_(std::move(channel)),
      selector_(v1::AcceleratorSelector::NewStub(channel_)),
      admin_(v1::ModelAdmin::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

absl::Status Client::CallWithRetry(const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(options_.deadline_ms);
  grpc::Status last;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    if (attempt > 0) {
      const absl::Duration sleep = RetryBackoff(options_, attempt - 1);
      if (absl::Now() + sleep >= deadline) break;  // no time left for another attempt
      absl::SleepFor(sleep);
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    AddAuthMetadata(options_, &context);
    last = call(&context);
    if (last.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  return FromGrpcStatus(last);
}

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> Client::Unary(Stub* stub,
                                       grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                                       const Request& request) {
  Response response;
  absl::Status s = CallWithRetry([&](grpc::ClientContext* ctx) {
    response.Clear();  // a failed attempt may have left part of an answer
    return (stub->*rpc)(ctx, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::SelectAcceleratorResponse> Client::SelectAccelerator(const v1::SelectAcceleratorRequest& request) {
  return Unary(selector_.get(), &v1::AcceleratorSelector::Stub::SelectAccelerator, request);
}

absl::StatusOr<v1::ListStrategiesResponse> Client::ListStrategies(bool include_retired) {
  v1::ListStrategiesResponse all;
  v1::ListStrategiesRequest request;
  request.set_include_retired(include_retired);
  do {  // page by page: a large catalogue does not fit one message
    auto page = Unary(selector_.get(), &v1::AcceleratorSelector::Stub::ListStrategies, request);
    if (!page.ok()) return page.status();
    for (auto& strategy : *page->mutable_strategies()) *all.add_strategies() = std::move(strategy);
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  return all;
}

absl::StatusOr<v1::RegisterStrategyResponse> Client::RegisterStrategy(const v1::Strategy& strategy) {
  v1::RegisterStrategyRequest request;
  *request.mutable_strategy() = strategy;
  return Unary(selector_.get(), &v1::AcceleratorSelector::Stub::RegisterStrategy, request);
}

absl::StatusOr<v1::RetireStrategyResponse> Client::RetireStrategy(const std::string& id) {
  v1::RetireStrategyRequest request;
  request.set_id(id);
  return Unary(selector_.get(), &v1::AcceleratorSelector::Stub::RetireStrategy, request);
}

absl::StatusOr<v1::UnretireStrategyResponse> Client::UnretireStrategy(const std::string& id) {
  v1::UnretireStrategyRequest request;
  request.set_id(id);
  return Unary(selector_.get(), &v1::AcceleratorSelector::Stub::UnretireStrategy, request);
}

absl::StatusOr<v1::GetModelInfoResponse> Client::GetModelInfo() {
  return Unary(selector_.get(), &v1::AcceleratorSelector::Stub::GetModelInfo, v1::GetModelInfoRequest());
}

absl::Status Client::Health(const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  auto response = Unary(health_.get(), &grpc::health::v1::Health::Stub::Check, request);
  if (!response.ok()) return response.status();
  if (response->status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(
        absl::StrCat("health of \"", service, "\" is ",
                     grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response->status())));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RetrainResponse> Client::Retrain() {
  return Unary(admin_.get(), &v1::ModelAdmin::Stub::Retrain, v1::RetrainRequest());
}

absl::StatusOr<v1::PinModelResponse> Client::PinModel(uint64_t version) {
  v1::PinModelRequest request;
  request.set_version(version);
  return Unary(admin_.get(), &v1::ModelAdmin::Stub::PinModel, request);
}

absl::StatusOr<v1::QuarantineNodeResponse> Client::QuarantineNode(const std::string& node_id, bool release) {
  v1::QuarantineNodeRequest request;
  request.set_node_id(node_id);
  request.set_release(release);
  return Unary(admin_.get(), &v1::ModelAdmin::Stub::QuarantineNode, request);
}

absl::StatusOr<v1::RollbackModelResponse> Client::RollbackModel() {
  return Unary(admin_.get(), &v1::ModelAdmin::Stub::RollbackModel, v1::RollbackModelRequest());
}

absl::StatusOr<v1::GetLiveQualityResponse> Client::GetLiveQuality(int64_t window_ms, uint32_t top_nodes) {
  v1::GetLiveQualityRequest request;
  request.set_window_ms(window_ms);
  request.set_top_nodes(top_nodes);
  return Unary(admin_.get(), &v1::ModelAdmin::Stub::GetLiveQuality, request);
}

}  // namespace accelsel::client
