// Server assembly and graceful shutdown.
#include "server/server.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/model_manager.h"

namespace accelsel::server {

inline constexpr char kSelectorServiceName[] = "accelsel.v1.AcceleratorSelector";

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  s->metrics_ = std::make_unique<Metrics>();
  if (!options.metrics_listen.empty()) {
    auto port = s->metrics_->Serve(options.metrics_listen);
    if (!port.ok()) return port.status();
    s->metrics_port_ = *port;
  }
  auto core = ServiceCore::Create(options, s->metrics_.get());
  if (!core.ok()) return core.status();
  s->core_ = *std::move(core);
  s->selector_service_ = std::make_unique<SelectorService>(s->core_.get());
  s->admin_service_ = std::make_unique<ModelAdminService>(s->core_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->selector_service_.get());
  builder.RegisterService(s->admin_service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  s->grpc_server_ = builder.BuildAndStart();
  if (s->grpc_server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen,
                                               " (address in use or not local?)"));
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
