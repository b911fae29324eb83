// Server: assembles metrics, ServiceCore, gRPC services, health, reflection, channelz (--channelz), the interceptors
// (server/interceptors.h) and the keepalive settings into one running service.
// Used by main() and by the integration tests (which bind 127.0.0.1:0 and read back the ports).
//
// Thread safety: after Start returns, Shutdown, Wait and ReloadConfig may be called from any threads at once (one
// thread may wait while another shuts down; a second Shutdown returns at once); the accessors return what Start
// set, which never changes. mu_ guards the two shutdown flags only; Shutdown does its work without it. A watch
// thread (options.config_watch_interval) polls the token and TLS files until Shutdown. Ownership: the server
// owns everything it assembled; the destructor shuts down, then the members go in reverse order (gRPC server first,
// metrics last).
#ifndef ACCELSEL_SERVER_SERVER_H_
#define ACCELSEL_SERVER_SERVER_H_

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server.h"
#include "server/access.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/service_core.h"
#include "server/services.h"

namespace accelsel::server {

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  ServiceCore& core() { return *core_; }
  AccessControl& access() { return *access_; }
  Metrics& metrics() { return *metrics_; }

  // What SIGHUP does (main.cc), and the file watch on a change: re-reads the --auth_tokens file (a bad one keeps
  // the tokens in force) and checks the TLS files, which gRPC itself reloads every options.tls_refresh_interval.
  // Logs the result ("config_reload" / "config_reload_failed") and counts it in accelsel_config_reloads_total.
  // `source` names the trigger in the log line ("sighup", "watch", ...). Returns the token reload's status (OK
  // without --auth_tokens).
  absl::Status ReloadConfig(absl::string_view source);

  // Graceful stop: health NOT_SERVING, stop accepting, wait up to options.shutdown_grace for in-flight calls
  // (then cancel them), finish ingest, stop the trainer, flush the store. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until Shutdown() has completed.
  void Wait() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Server() = default;
  // The health check's status of the server and of the selector service; nothing after Shutdown began.
  void SetServing(bool serving) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ReloadTokens(absl::string_view source);
  void CheckTlsFiles(absl::string_view source);
  // The watch thread's loop: every options_.config_watch_interval until Shutdown.
  void WatchFiles() ABSL_LOCKS_EXCLUDED(mu_);

  ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<ServiceCore> core_;
  std::unique_ptr<SelectorService> selector_service_;
  std::unique_ptr<ModelAdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  int metrics_port_ = 0;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watcher_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_SERVER_H_
