// C++ client library that inference nodes embed to talk to accelsel: unary calls with a deadline and
// bounded retries on UNAVAILABLE. Telemetry streaming lives in client/telemetry_sender.h.
#ifndef ACCELSEL_CLIENT_CLIENT_H_
#define ACCELSEL_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace accelsel::client {

// How to reach the server and how hard to try. Defaults suit a node on the same network as the server.
struct ClientOptions {
  // gRPC target, e.g. "127.0.0.1:50051" or "dns:///accelsel.example:50051".
  std::string target = "127.0.0.1:50051";
  // Deadline of one call including all its retries, ms. Must be > 0.
  int64_t deadline_ms = 5000;
  // Attempts per call (first try + retries); only UNAVAILABLE is retried. 1 = no retry. Must be >= 1.
  int max_attempts = 4;
  // Backoff before the first retry, ms; doubles per retry up to max_backoff_ms. The actual sleep is drawn
  // uniformly from [backoff/2, backoff] (jitter), so nodes that lost the server together do not return together.
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 2000;
  // Sent as metadata "authorization: Bearer <token>" on every call when not empty.
  std::string bearer_token;
  // PEM of the root CA(s) that sign the server's certificate. Empty = plaintext (insecure) channel.
  std::string tls_root_ca_pem;
  // PEM client certificate chain and key, for servers that require mutual TLS. Used only with tls_root_ca_pem.
  std::string tls_client_cert_pem;
  std::string tls_client_key_pem;
};

// Checks the numeric fields of `options`.
absl::Status ValidateClientOptions(const ClientOptions& options);

// A channel for `options` (TLS when tls_root_ca_pem is set).
std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options);

// grpc::Status -> absl::Status (the code numbers are the same).
absl::Status FromGrpcStatus(const grpc::Status& status);

// Adds the bearer token (if any) to a call's metadata.
void AddAuthMetadata(const ClientOptions& options, grpc::ClientContext* context);

// The sleep before retry number `retry` (0 = first retry): exponential, capped, with jitter.
absl::Duration RetryBackoff(const ClientOptions& options, int retry);

// Thread safety: one Client may be shared by every thread of a node; every call may run concurrently with any
// other. It holds no lock: its options and stubs are fixed at construction, each call builds its own ClientContext,
// and the gRPC channel and stubs are thread-safe themselves (the retry jitter draws from a thread-local generator).
// Ownership: the client shares the channel (channel() lets a TelemetrySender use the same one) and owns its stubs.
class Client {
 public:
  // Checks the options and makes the channel (connection happens lazily on the first call).
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);
  // For tests and for callers that own a channel already.
  Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel);

  absl::StatusOr<v1::SelectAcceleratorResponse> SelectAccelerator(const v1::SelectAcceleratorRequest& request);
  // The whole catalogue, fetched page by page (one call per 1000 strategies); retired ones only on request.
  absl::StatusOr<v1::ListStrategiesResponse> ListStrategies(bool include_retired = false);
  absl::StatusOr<v1::RegisterStrategyResponse> RegisterStrategy(const v1::Strategy& strategy);
  // Operator only: hide a strategy from selection and listing, or restore it.
  absl::StatusOr<v1::RetireStrategyResponse> RetireStrategy(const std::string& id);
  absl::StatusOr<v1::UnretireStrategyResponse> UnretireStrategy(const std::string& id);
  absl::StatusOr<v1::GetModelInfoResponse> GetModelInfo();
  absl::StatusOr<v1::RetrainResponse> Retrain();
  // version 0 = unpin.
  absl::StatusOr<v1::PinModelResponse> PinModel(uint64_t version);
  absl::StatusOr<v1::RollbackModelResponse> RollbackModel();
  // Operator only. Empty node_id = list only.
  absl::StatusOr<v1::QuarantineNodeResponse> QuarantineNode(const std::string& node_id, bool release);
  // Operator only: live quality over the last window_ms (0 = one hour, at most 30 days) with the top_nodes nodes
  // that disagree most with the model (0 = 10, at most 1000); the server answers INVALID_ARGUMENT beyond.
  absl::StatusOr<v1::GetLiveQualityResponse> GetLiveQuality(int64_t window_ms, uint32_t top_nodes);
  // Standard gRPC health check (grpc.health.v1) of `service` ("" = the whole server). OK only when SERVING;
  // UNAVAILABLE naming the status otherwise.
  absl::Status Health(const std::string& service = "");

  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  // Runs `call` with a fresh ClientContext per attempt; each attempt's deadline is what is left of the
  // call's overall deadline. Retries UNAVAILABLE with RetryBackoff while attempts and time remain.
  absl::Status CallWithRetry(const std::function<grpc::Status(grpc::ClientContext*)>& call);
  // One unary call through CallWithRetry: `rpc` is a stub method, e.g. &v1::ModelAdmin::Stub::Retrain.
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Unary(Stub* stub, grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                                 const Request& request);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AcceleratorSelector::Stub> selector_;
  std::unique_ptr<v1::ModelAdmin::Stub> admin_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace accelsel::client

#endif  // ACCELSEL_CLIENT_CLIENT_H_
