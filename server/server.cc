// Server assembly and graceful shutdown.
#include "server/server.h"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpc/grpc.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/channelz_service_plugin.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/server_builder.h"
#include "server/cluster_ingest.h"
#include "server/interceptors.h"
#include "server/model_manager.h"
#include "util/file.h"
#include "util/log.h"

namespace accelsel::server {

inline constexpr char kSelectorServiceName[] = "accelsel.v1.AcceleratorSelector";
inline constexpr char kChannelzServiceName[] = "grpc.channelz.v1.Channelz";
inline constexpr char kReflectionServiceName[] = "grpc.reflection.v1alpha.ServerReflection";

namespace {

// The TLS files in use, with their flags.
std::vector<std::pair<std::string, std::string>> TlsFiles(const ServerOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  if (o.tls_cert_file.empty()) return out;
  out.emplace_back("--tls_cert", o.tls_cert_file);
  out.emplace_back("--tls_key", o.tls_key_file);
  if (!o.tls_client_ca_file.empty()) out.emplace_back("--tls_client_ca", o.tls_client_ca_file);
  return out;
}

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  auto pem = util::ReadFile(path);
  if (!pem.ok()) return absl::Status(pem.status().code(), absl::StrCat(flag, ": ", pem.status().message()));
  if (pem->empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is empty"));
  if (!absl::StrContains(*pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " holds no PEM block"));
  }
  return pem;
}

// Plaintext, TLS, or mutual TLS, from the options. The files are read here once, so that a missing or empty one
// stops the start with its flag's name; from then on gRPC's FileWatcherCertificateProvider re-reads them every
// tls_refresh_interval and new handshakes use what it read (a rotation needs no restart).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerOptions& o) {
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (o.tls_cert_file.empty()) {
    if (!o.tls_client_ca_file.empty()) return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert/--tls_key");
    return grpc::InsecureServerCredentials();
  }
  for (const auto& [flag, path] : TlsFiles(o)) {
    if (auto pem = ReadPem(flag, path); !pem.ok()) return pem.status();
  }
  const auto refresh_s = static_cast<unsigned int>(
      std::clamp<int64_t>(absl::ToInt64Seconds(o.tls_refresh_interval), 1, int64_t{24} * 3600));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(o.tls_key_file, o.tls_cert_file,
                                                                                       o.tls_client_ca_file, refresh_s);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (o.tls_client_ca_file.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

// What the watch compares: a file replaced (new inode, as by a Kubernetes Secret's symlink swap, or an editor's
// rename), or rewritten in place (size, mtime). A missing file is all zeros.
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp Stamp(const std::string& path) {
  FileStamp s;
  struct stat st {};
  if (path.empty() || stat(path.c_str(), &st) != 0) return s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

std::vector<FileStamp> TlsStamps(const ServerOptions& o) {
  std::vector<FileStamp> out;
  for (const auto& [flag, path] : TlsFiles(o)) out.push_back(Stamp(path));
  return out;
}

// The services the server registers, so that their grpc_server_* series exist from the first scrape. Ours, and
// gRPC's built-in health service (described by the project's copy of health.proto), through a message of their
// .proto file, which links it in; gRPC's reflection and channelz are in the generated pool with their libraries.
void AddServedServices(const ServerOptions& options, Metrics* metrics) {
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  const google::protobuf::FileDescriptor* api = v1::RunReport::descriptor()->file();
  std::vector<const google::protobuf::ServiceDescriptor*> services = {
      api->FindServiceByName("AcceleratorSelector"), api->FindServiceByName("ModelAdmin"),
      grpc::health::v1::HealthCheckRequest::descriptor()->file()->FindServiceByName("Health"),
      pool->FindServiceByName(kReflectionServiceName)};
  if (options.channelz) services.push_back(pool->FindServiceByName(kChannelzServiceName));
  for (const auto* service : services) {
    if (service != nullptr) metrics->AddGrpcService(*service);  // one not found counts as "unknown"
  }
}

// Keepalive (docs/OPERATIONS.md, "Keepalive"); a zero duration leaves gRPC's default.
void SetKeepalive(const ServerOptions& o, grpc::ServerBuilder* builder) {
  auto set_ms = [builder](const char* arg, absl::Duration d) {
    if (d <= absl::ZeroDuration()) return;
    builder->AddChannelArgument(arg, static_cast<int>(std::min<int64_t>(INT_MAX, absl::ToInt64Milliseconds(d))));
  };
  set_ms(GRPC_ARG_KEEPALIVE_TIME_MS, o.keepalive_time);
  set_ms(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o.keepalive_timeout);
  set_ms(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, o.keepalive_min_client_interval);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, o.keepalive_max_ping_strikes);
  // Ping connections without calls too (a node between two ReportRun streams), and let clients do the same.
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC stops pinging after 2 pings without sending data; a ReportRun stream whose node has nothing to report
  // sends no acks for hours, and its dead peer would never be found.
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // No GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS: gRPC's default grace is unlimited, so open streams are never cut.
  set_ms(GRPC_ARG_MAX_CONNECTION_AGE_MS, o.max_connection_age);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  if (!IsLoopbackAddress(options.listen) && options.access.auth_tokens_file.empty() && !options.allow_insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve ", options.listen,
        " without authentication: give --auth_tokens FILE (and --tls_cert/--tls_key), or --allow_insecure"));
  }
  auto creds = MakeServerCredentials(options);
  if (!creds.ok()) return creds.status();
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  auto access = AccessControl::Create(options.access);
  if (!access.ok()) return access.status();
  s->access_ = *std::move(access);
  s->metrics_ = std::make_unique<Metrics>();
  AddServedServices(options, s->metrics_.get());
  auto core = ServiceCore::Create(options, s->metrics_.get());
  if (!core.ok()) return core.status();
  s->core_ = *std::move(core);
  // Only now, with the gauges loaded from the store: a scrape during start-up would read accelsel_runs_stored 0
  // for a full store, i.e. as data loss. Until then the endpoint refuses connections (the target is down).
  if (!options.metrics_listen.empty()) {
    auto port = s->metrics_->Serve(options.metrics_listen);
    if (!port.ok()) return port.status();
    s->metrics_port_ = *port;
  }
  s->selector_service_ = std::make_unique<SelectorService>(s->core_.get(), s->access_.get());
  s->admin_service_ = std::make_unique<ModelAdminService>(s->core_.get(), s->access_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // A process-wide ServerBuilder plugin: once one server of a process enabled it, every later one serves channelz
  // too (only tests start several servers in one process; the operator-only check below holds for them all).
  if (options.channelz) grpc::channelz::experimental::InitChannelzService();
  grpc::ServerBuilder builder;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  if (s->access_->auth_enabled()) {
    interceptors.push_back(std::make_unique<OperatorOnlyInterceptorFactory>(
        s->access_.get(), absl::StrCat("/", kChannelzServiceName, "/")));
  }
  interceptors.push_back(std::make_unique<MetricsInterceptorFactory>(s->metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  SetKeepalive(options, &builder);
  builder.AddListeningPort(options.listen, *creds, &s->port_);
  if (options.grpc_memory_bytes > 0) {
    grpc::ResourceQuota quota("accelsel-server");
    quota.Resize(options.grpc_memory_bytes);
    builder.SetResourceQuota(quota);
  }
  if (options.max_concurrent_streams_per_connection > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               static_cast<int>(options.max_concurrent_streams_per_connection));
  }
  // Compressed requests are refused before any is decompressed (UNIMPLEMENTED, "Compression algorithm 'gzip' is
  // disabled"): gRPC inflates a whole message before checking it against max_message_bytes, so a few hundred kB
  // of gzip would cost hundreds of MB. Requests are small and responses are not compressed either.
  builder.AddChannelArgument(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET, 1 << GRPC_COMPRESS_NONE);
  builder.RegisterService(s->selector_service_.get());
  builder.RegisterService(s->admin_service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  s->grpc_server_ = builder.BuildAndStart();
  if (s->grpc_server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen, " (address in use or not local?)"));
  }
  // In cluster mode a replica is SERVING only once it applied what the stream held at start-up: a new replica on an
  // empty folder bootstraps from the stream before a load balancer sends it traffic (selects are answered meanwhile).
  ClusterIngest* cluster = s->core_->cluster();
  s->SetServing(cluster == nullptr);
  if (cluster != nullptr) cluster->OnCaughtUp([server = s.get()] { server->SetServing(true); });
  s->core_->models().Start();
  if (options.config_watch_interval > absl::ZeroDuration() &&
      (s->access_->auth_enabled() || !options.tls_cert_file.empty())) {
    s->watcher_ = std::thread([server = s.get()] { server->WatchFiles(); });
  }
  return s;
}

absl::Status Server::ReloadConfig(absl::string_view source) {
  absl::Status tokens = ReloadTokens(source);
  CheckTlsFiles(source);
  return tokens;
}

absl::Status Server::ReloadTokens(absl::string_view source) {
  if (!access_->auth_enabled()) return absl::OkStatus();
  auto count = access_->ReloadTokens();
  metrics_->ConfigReload(/*tls=*/false, count.ok());
  if (!count.ok()) {
    log::Warn("config_reload_failed", {{"what", "tokens"},
                                       {"source", source},
                                       {"error", count.status().message()},
                                       {"kept_tokens", access_->token_count()}});
    return count.status();
  }
  log::Info("config_reload", {{"what", "tokens"}, {"source", source}, {"tokens", *count}});
  return absl::OkStatus();
}

void Server::CheckTlsFiles(absl::string_view source) {
  const auto files = TlsFiles(options_);
  if (files.empty()) return;
  for (const auto& [flag, path] : files) {
    if (auto pem = ReadPem(flag, path); !pem.ok()) {
      metrics_->ConfigReload(/*tls=*/true, false);
      log::Warn("config_reload_failed", {{"what", "tls"}, {"source", source}, {"error", pem.status().message()}});
      return;
    }
  }
  metrics_->ConfigReload(/*tls=*/true, true);
  log::Info("config_reload",
            {{"what", "tls"}, {"source", source}, {"refresh_s", absl::ToInt64Seconds(options_.tls_refresh_interval)}});
}

void Server::WatchFiles() {
  const std::string& tokens_file = options_.access.auth_tokens_file;
  FileStamp tokens = Stamp(tokens_file);
  std::vector<FileStamp> tls = TlsStamps(options_);
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&shut_down_), options_.config_watch_interval)) {
    mu_.Unlock();
    if (FileStamp now = Stamp(tokens_file); access_->auth_enabled() && now != tokens) {
      tokens = now;  // a file caught half-written fails, and its next write is a change again
      ReloadTokens("watch").IgnoreError();
    }
    if (std::vector<FileStamp> now = TlsStamps(options_); now != tls) {
      tls = std::move(now);
      CheckTlsFiles("watch");
    }
    mu_.Lock();
  }
}

Server::~Server() { Shutdown(); }

void Server::SetServing(bool serving) {
  // Under mu_, so that a replica catching up during Shutdown cannot turn SERVING again after it.
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  auto* health = grpc_server_->GetHealthCheckService();
  health->SetServingStatus("", serving);
  health->SetServingStatus(kSelectorServiceName, serving);
}

void Server::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (grpc_server_) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(absl::ToInt64Milliseconds(options_.shutdown_grace)));
  }
  if (watcher_.joinable()) watcher_.join();
  if (core_) core_->Shutdown();
  if (grpc_server_) grpc_server_->Wait();
  absl::MutexLock lock(&mu_);
  done_ = true;
}

void Server::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
}

}  // namespace accelsel::server
