// Unary calls to accelsel with a deadline per call; retries are gRPC's own, set per method by the channel's
// service config.
#include "client/client.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/rpc/status.pb.h"

namespace accelsel::client {
namespace {

// gRPC's limit on retryPolicy.maxAttempts (larger values are cut to it).
constexpr int kMaxAttempts = 5;

struct MethodName {
  const char* service;
  const char* method;
};

// The methods gRPC retries, by what a repeat can do (client/README.md, "Retries"). Any method not named is never
// retried: Retrain (a lost answer must not train twice), RollbackModel (relative to the serving version: a repeat
// would roll back twice) and Backup (the first attempt may have written the folder).
// Reads: nothing changes, so they are repeated on UNAVAILABLE and on RESOURCE_EXHAUSTED, after the server's
// grpc-retry-pushback-ms (a rate limit's wait) when it sends one.
constexpr MethodName kReads[] = {{"accelsel.v1.AcceleratorSelector", "SelectAccelerator"},
                                 {"accelsel.v1.AcceleratorSelector", "ListStrategies"},
                                 {"accelsel.v1.AcceleratorSelector", "GetModelInfo"},
                                 {"accelsel.v1.ModelAdmin", "GetLiveQuality"},
                                 {"grpc.health.v1.Health", "Check"}};
// Idempotent changes: a repeat after a lost answer leaves the same state (only the answer's `created` / `changed`
// may then say false). Repeated on UNAVAILABLE only: a change refused by a rate limit is reported at once, with the
// wait in its RetryInfo, rather than held back.
constexpr MethodName kIdempotentChanges[] = {{"accelsel.v1.AcceleratorSelector", "RegisterStrategy"},
                                             {"accelsel.v1.AcceleratorSelector", "RetireStrategy"},
                                             {"accelsel.v1.AcceleratorSelector", "UnretireStrategy"},
                                             {"accelsel.v1.ModelAdmin", "PinModel"},
                                             {"accelsel.v1.ModelAdmin", "QuarantineNode"}};

// A duration in the service config's JSON form, e.g. "0.100s".
std::string JsonDuration(int64_t ms) {
  return absl::StrCat(ms / 1000, ".", absl::Dec(ms % 1000, absl::kZeroPad3), "s");
}

// One methodConfig entry: `methods` retried on `codes` (a JSON list's items) with the options' attempts and backoff.
std::string MethodConfig(const ClientOptions& options, absl::Span<const MethodName> methods, absl::string_view codes) {
  std::vector<std::string> names;
  for (const MethodName& m : methods) {
    names.push_back(absl::StrCat(R"({"service":")", m.service, R"(","method":")", m.method, R"("})"));
  }
  return absl::StrCat(R"({"name":[)", absl::StrJoin(names, ","), R"(],"retryPolicy":{"maxAttempts":)",
                      options.max_attempts, R"(,"initialBackoff":")", JsonDuration(options.initial_backoff_ms),
                      R"(","maxBackoff":")", JsonDuration(options.max_backoff_ms),
                      R"(","backoffMultiplier":2,"retryableStatusCodes":[)", codes, "]}}");
}

// The key of `request` in Select's cache: what the answer depends on besides the server's model, i.e. the task and
// the question asked. Exploration and node_id do not change which answer is a good fallback.
std::string FallbackKey(const v1::SelectAcceleratorRequest& request) {
  v1::SelectAcceleratorRequest key = request;
  key.set_allow_exploration(false);
  key.clear_node_id();
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);  // map fields (context.extra) in key order
  key.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

}  // namespace

// Least recently used first out: `order_` holds the entries, most recently used at the front; `index_` finds them.
class Client::FallbackCache {
 public:
  explicit FallbackCache(size_t capacity) : capacity_(capacity) {}

  void Put(std::string key, const v1::SelectAcceleratorResponse& response) ABSL_LOCKS_EXCLUDED(mu_) {
    if (capacity_ == 0) return;
    absl::MutexLock lock(&mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      it->second->second = response;
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    order_.emplace_front(key, response);
    index_.emplace(std::move(key), order_.begin());
    while (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }

  // The kept answer to `key`, now the most recently used; nullopt when none is kept.
  std::optional<v1::SelectAcceleratorResponse> Get(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }

 private:
  using Entry = std::pair<std::string, v1::SelectAcceleratorResponse>;
  const size_t capacity_;
  absl::Mutex mu_;
  std::list<Entry> order_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
};

const char* SelectSourceName(SelectSource source) {
  switch (source) {
    case SelectSource::kCache: return "cache";
    case SelectSource::kDefault: return "default";
    case SelectSource::kServer: break;
  }
  return "server";
}

bool IsSelectFallbackCode(absl::StatusCode code) {
  // RESOURCE_EXHAUSTED is here because a server that sheds load (after gRPC's retries honoured its pushback) is, for
  // a node waiting to start a job, as good as unreachable: the node must not stall on accelsel.
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted;
}

absl::Status ValidateClientOptions(const ClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target is empty");
  if (options.deadline_ms <= 0) return absl::InvalidArgumentError("deadline_ms must be > 0");
  if (options.max_attempts < 1 || options.max_attempts > kMaxAttempts) {
    return absl::InvalidArgumentError(absl::StrCat("max_attempts must be between 1 and ", kMaxAttempts,
                                                   " (gRPC's limit), got ", options.max_attempts));
  }
  if (options.initial_backoff_ms <= 0 || options.max_backoff_ms < options.initial_backoff_ms) {
    return absl::InvalidArgumentError("need 0 < initial_backoff_ms <= max_backoff_ms");
  }
  if (options.keepalive_time_ms < 0 || options.keepalive_timeout_ms <= 0) {
    return absl::InvalidArgumentError("need keepalive_time_ms >= 0 and keepalive_timeout_ms > 0");
  }
  return absl::OkStatus();
}

std::string RetryServiceConfig(const ClientOptions& options) {
  if (options.max_attempts <= 1) return "{}";  // gRPC wants maxAttempts >= 2 in a retry policy
  return absl::StrCat(R"({"methodConfig":[)", MethodConfig(options, kReads, R"("UNAVAILABLE","RESOURCE_EXHAUSTED")"),
                      ",", MethodConfig(options, kIdempotentChanges, R"("UNAVAILABLE")"), "]}");
}

grpc::ChannelArguments ClientChannelArguments(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(RetryServiceConfig(options));
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, options.max_attempts > 1 ? 1 : 0);
  SetReplicaLoadBalancing(&args);
  if (options.keepalive_time_ms > 0) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(std::min<int64_t>(INT_MAX, options.keepalive_time_ms)));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                static_cast<int>(std::min<int64_t>(INT_MAX, options.keepalive_timeout_ms)));
    // Keep pinging while a ReportRun stream sends nothing (gRPC stops after 2 pings without data); pings only
    // while a call is open, as the server's keepalive_min_client_interval expects.
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  }
  return args;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ClientOptions& options) {
  auto target = ChannelTarget(options.target);
  if (!target.ok()) return target.status();
  grpc::ChannelArguments args = ClientChannelArguments(options);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_root_ca_pem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_ca_pem;
    ssl.pem_cert_chain = options.tls_client_cert_pem;
    ssl.pem_private_key = options.tls_client_key_pem;
    creds = grpc::SslCredentials(ssl);
    // A list became gRPC's "ipv4:a:p,b:p", whose authority gRPC would take for the name in the certificates:
    // each replica's certificate is checked against the list's first host name as written instead.
    const absl::string_view written = absl::StripAsciiWhitespace(options.target);
    if (*target != written) {
      args.SetString(GRPC_ARG_DEFAULT_AUTHORITY,
                     std::string(absl::StripAsciiWhitespace(written.substr(0, written.find(',')))));
    }
  }
  return grpc::CreateCustomChannel(*target, creds, args);
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) out.SetPayload(any.type_url(), absl::Cord(any.value()));
  }
  return out;
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
  auto channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::make_unique<Client>(options, *std::move(channel));
}

Client::Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      channel_(std::move(channel)),
      selector_(v1::AcceleratorSelector::NewStub(channel_)),
      admin_(v1::ModelAdmin::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)),
      cache_(std::make_unique<FallbackCache>(options_.fallback_cache_size)) {}

Client::~Client() = default;

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> Client::Unary(Stub* stub,
                                       grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                                       const Request& request) {
  grpc::ClientContext context;
  // One deadline for the call, every retry gRPC makes included.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.deadline_ms));
  AddAuthMetadata(options_, &context);
  Response response;
  const grpc::Status status = (stub->*rpc)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::SelectAcceleratorResponse> Client::SelectAccelerator(const v1::SelectAcceleratorRequest& request) {
  return Unary(selector_.get(), &v1::AcceleratorSelector::Stub::SelectAccelerator, request);
}

absl::StatusOr<Selection> Client::Select(const v1::SelectAcceleratorRequest& request) {
  // A cache of size 0 keeps nothing, so the request need not be serialized for it.
  std::string key = options_.fallback_cache_size > 0 ? FallbackKey(request) : std::string();
  auto response = SelectAccelerator(request);
  if (response.ok()) {
    cache_->Put(std::move(key), *response);
    Selection out;
    out.response = *std::move(response);
    return out;
  }
  if (!IsSelectFallbackCode(response.status().code())) return response.status();
  Selection out;
  out.error = response.status();
  if (auto cached = cache_->Get(key)) {
    out.response = *std::move(cached);
    out.response.clear_decision_id();
    out.source = SelectSource::kCache;
    return out;
  }
  if (options_.fallback_strategy.empty()) return response.status();
  // The objective the answer is for, as a server would echo it.
  out.response.set_objective(request.objective() == v1::OBJECTIVE_UNSPECIFIED ? v1::OBJECTIVE_E2E_LATENCY
                                                                              : request.objective());
  v1::Recommendation* only = out.response.add_recommendations();
  only->set_rank(1);
  only->set_selection_probability(1.0);
  only->set_evidence_layer(v1::EVIDENCE_LAYER_UNKNOWN);
  only->mutable_strategy()->set_id(options_.fallback_strategy);
  out.source = SelectSource::kDefault;
  return out;
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

absl::StatusOr<v1::BackupResponse> Client::Backup(const std::string& dir) {
  v1::BackupRequest request;
  request.set_dir(dir);
  return Unary(admin_.get(), &v1::ModelAdmin::Stub::Backup, request);
}

}  // namespace accelsel::client
