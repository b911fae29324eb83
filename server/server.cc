// Server assembly and graceful shutdown.
#include "server/server.h"

#include "absl/strings/str_cat.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/model_manager.h"
#include "util/file.h"

namespace accelsel::server {

inline constexpr char kSelectorServiceName[] = "accelsel.v1.AcceleratorSelector";

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  auto pem = util::ReadFile(path);
  if (!pem.ok()) return absl::Status(pem.status().code(), absl::StrCat(flag, ": ", pem.status().message()));
  if (pem->empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is empty"));
  return pem;
}

// Plaintext, TLS, or mutual TLS, from the options.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerOptions& o) {
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (o.tls_cert_file.empty()) {
    if (!o.tls_client_ca_file.empty()) return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert/--tls_key");
    return grpc::InsecureServerCredentials();
  }
  auto cert = ReadPem("--tls_cert", o.tls_cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadPem("--tls_key", o.tls_key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!o.tls_client_ca_file.empty()) {
    auto ca = ReadPem("--tls_client_ca", o.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
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
  grpc::ServerBuilder builder;
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
  auto* health = s->grpc_server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kSelectorServiceName, true);
  s->core_->models().Start();
  return s;
}

Server::~Server() { Shutdown(); }

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
