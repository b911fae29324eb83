// C++ client library that inference nodes embed to talk to accelsel: unary calls with a deadline, retried by
// gRPC itself where a repeat is safe (the channel's service config; client/README.md, "Retries"). Telemetry
// streaming lives in client/telemetry_sender.h.
#ifndef ACCELSEL_CLIENT_CLIENT_H_
#define ACCELSEL_CLIENT_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace accelsel::client {

// How to reach the server and how hard to try. Defaults suit a node on the same network as the server.
struct ClientOptions {
  // The server or its replicas, in a form ChannelTarget takes: "127.0.0.1:50051", a list of replicas
  // "10.0.0.1:50051,10.0.0.2:50051", or a gRPC URI such as "dns:///accelsel.example:50051" (client/README.md,
  // "Several replicas"). Calls are spread over the replicas (round_robin) and retried on another one.
  std::string target = "127.0.0.1:50051";
  // Deadline of one call including all its retries, ms. Must be > 0.
  int64_t deadline_ms = 5000;
  // Attempts per call (first try + retries) of the methods that are retried (client/README.md, "Retries": on
  // UNAVAILABLE, reads also on RESOURCE_EXHAUSTED). 1 = no retry. 1 to 5 (gRPC's limit).
  int max_attempts = 4;
  // Backoff before the first retry, ms (> 0); doubles per retry up to max_backoff_ms, with gRPC's jitter, so nodes
  // that lost the server together do not return together. A server's grpc-retry-pushback-ms replaces it.
  // The TelemetrySender's reconnects use the same two (RetryBackoff).
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 2000;
  // Sent as metadata "authorization: Bearer <token>" on every call when not empty.
  std::string bearer_token;
  // PEM of the root CA(s) that sign the server's certificate. Empty = plaintext (insecure) channel.
  std::string tls_root_ca_pem;
  // PEM client certificate chain and key, for servers that require mutual TLS. Used only with tls_root_ca_pem.
  std::string tls_client_cert_pem;
  std::string tls_client_key_pem;
  // Keepalive while a call is open: a ping after this long without a frame from the server, ms, keeps a NAT's
  // entry for a long ReportRun stream open and finds a dead server. Not below the server's
  // --keepalive_min_client_interval (30 s by default): faster pings make it close the connection
  // (GOAWAY too_many_pings). 0 = no pings (gRPC's default).
  int64_t keepalive_time_ms = 60000;
  // A ping not answered within this closes the connection, ms (> 0); its open calls end UNAVAILABLE.
  int64_t keepalive_timeout_ms = 20000;
  // Client::Select when the server cannot answer and no earlier answer to the request is cached: this strategy id
  // is returned as the only recommendation. Empty = the call's error instead.
  std::string fallback_strategy;
  // Requests whose last server answer Client::Select keeps for its fallback, least recently used dropped first.
  // 0 = none kept.
  size_t fallback_cache_size = 1024;
};

// Checks the numeric fields of `options`.
absl::Status ValidateClientOptions(const ClientOptions& options);

// The gRPC target for `addresses`, the form ClientOptions::target and the binaries' --server take:
//  - one "host:port" (a name, an IPv4 literal or a bracketed IPv6 literal "[::1]:50051"): returned as it is;
//  - a list of them separated by commas, "10.0.0.1:50051,10.0.0.2:50051": gRPC's own list form
//    "ipv4:10.0.0.1:50051,10.0.0.2:50051" (or "ipv6:[..]:port,..."). Host names in a list are resolved here, once
//    (getaddrinfo; every address of a name is a replica), so the list does not follow later DNS changes: for that
//    give one name as "dns:///name:port", which gRPC re-resolves, spreading calls over all its addresses;
//  - a URI with a scheme gRPC resolves (dns:, ipv4:, ipv6:, unix:, unix-abstract:, vsock:, xds:): as it is.
// Spaces around items are ignored. Errors start with `name` (the flag or field the value came from): INVALID_ARGUMENT,
// with the rule, for an empty item, a missing host or port, an IPv6 literal without brackets, a URI inside a list,
// or IPv4 and IPv6 addresses in one list (gRPC's list form holds one family); NOT_FOUND, or UNAVAILABLE for a
// temporary DNS failure, when a name of a list does not resolve. A result passes through unchanged, so a caller may
// convert once at its edge and hand the result on (without TLS: MakeChannel needs a list as written for that).
absl::StatusOr<std::string> ChannelTarget(absl::string_view addresses, absl::string_view name = "target");

// Sets the round_robin load-balancing policy on `args`: a channel to several replicas (or to a name with several
// addresses) keeps a connection to each and spreads calls over those that are ready, so a replica that fails is
// skipped while it reconnects, and a call that failed UNAVAILABLE on it is retried (RetryServiceConfig) on another.
// gRPC's default, pick_first, would send everything to one replica. Applies when the service config names no
// policy (RetryServiceConfig does not), so the two combine.
void SetReplicaLoadBalancing(grpc::ChannelArguments* args);

// The gRPC service config of the retries for `options` (JSON): per method, a retryPolicy with max_attempts and
// the backoff; "{}" when max_attempts is 1.
std::string RetryServiceConfig(const ClientOptions& options);
// The channel arguments MakeChannel uses: that service config, retries enabled, round_robin over the replicas
// (SetReplicaLoadBalancing) and the keepalive. For callers that make their own channel (adding arguments of their
// own, with ChannelTarget's target) and still want the client's retries and balancing.
grpc::ChannelArguments ClientChannelArguments(const ClientOptions& options);

// A channel to ChannelTarget(options.target) (TLS when tls_root_ca_pem is set), with ClientChannelArguments; the
// error is ChannelTarget's. With TLS, the certificate of every replica of a list must be valid for the list's first
// host name as written (a name the replicas share, or an IP address they all carry).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ClientOptions& options);

// grpc::Status -> absl::Status (the code numbers are the same). The server's google.rpc details (the serialized
// google.rpc.Status of the grpc-status-details-bin trailer: BadRequest, RetryInfo) become payloads of the
// absl::Status keyed by their type URL, e.g. "type.googleapis.com/google.rpc.BadRequest".
absl::Status FromGrpcStatus(const grpc::Status& status);

// Adds the bearer token (if any) to a call's metadata.
void AddAuthMetadata(const ClientOptions& options, grpc::ClientContext* context);

// The TelemetrySender's sleep before reconnect number `retry` (0 = first): exponential, capped, drawn from
// [backoff/2, backoff] (jitter).
absl::Duration RetryBackoff(const ClientOptions& options, int retry);

// Where an answer of Client::Select came from (client/README.md, "Local fallback of select").
enum class SelectSource {
  kServer,   // the server answered
  kCache,    // the server could not answer: its last answer to the same request, decision_id cleared
  kDefault,  // the server could not answer and none was cached: ClientOptions::fallback_strategy alone
};
// "server", "cache" or "default".
const char* SelectSourceName(SelectSource source);

// The codes after which Client::Select answers from its fallback: the server cannot answer now (down, unreachable,
// too slow), UNAVAILABLE or DEADLINE_EXCEEDED once gRPC's retries are spent. Any other error is the caller's to see.
bool IsSelectFallbackCode(absl::StatusCode code);

// The answer of Client::Select.
struct Selection {
  v1::SelectAcceleratorResponse response;
  SelectSource source = SelectSource::kServer;
  // Why the server's answer is missing (the failed call's status) when source is not kServer; OK otherwise.
  absl::Status error;

  bool fallback() const { return source != SelectSource::kServer; }
};

// Thread safety: one Client may be shared by every thread of a node; every call may run concurrently with any
// other. Its options and stubs are fixed at construction, each call builds its own ClientContext, and the gRPC
// channel and stubs are thread-safe themselves; Select's cache of answers has a lock of its own.
// Ownership: the client shares the channel (channel() lets a TelemetrySender use the same one) and owns its stubs.
class Client {
 public:
  // Checks the options and makes the channel (connection happens lazily on the first call).
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);
  // For tests and for callers that own a channel already. Retries are the channel's: make it with
  // ClientChannelArguments(options) to have them.
  Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel);
  ~Client();

  // SelectAccelerator with a local fallback, so a node never stalls on accelsel. A server answer is returned with
  // source kServer and kept (up to fallback_cache_size requests, keyed by the request less allow_exploration and
  // node_id, which do not change which answer is a good fallback). When the call ends with a fallback code
  // (IsSelectFallbackCode) the answer is the kept one for the same request (kCache, decision_id cleared: no decision
  // was logged for this run), else fallback_strategy alone (kDefault: rank 1, selection_probability 1, evidence
  // layer UNKNOWN, the request's objective), with `error` saying why; without either, that error. Any other error is
  // returned as it is.
  absl::StatusOr<Selection> Select(const v1::SelectAcceleratorRequest& request);
  // The plain call: the server's answer or its error. No fallback, and the answer is not kept for one.
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
  // Operator only: an online backup of the store into `dir` on the server's file system (inside its --backup_dir).
  absl::StatusOr<v1::BackupResponse> Backup(const std::string& dir);
  // Standard gRPC health check (grpc.health.v1) of `service` ("" = the whole server). OK only when SERVING;
  // UNAVAILABLE naming the status otherwise.
  absl::Status Health(const std::string& service = "");

  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  // One unary call with the deadline and the token: `rpc` is a stub method, e.g. &v1::ModelAdmin::Stub::Retrain.
  // gRPC retries it per the channel's service config.
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Unary(Stub* stub, grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                                 const Request& request);

  class FallbackCache;  // client.cc: the bounded LRU of Select's answers

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AcceleratorSelector::Stub> selector_;
  std::unique_ptr<v1::ModelAdmin::Stub> admin_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<FallbackCache> cache_;
};

}  // namespace accelsel::client

#endif  // ACCELSEL_CLIENT_CLIENT_H_
