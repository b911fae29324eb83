// accelsel-server: the acceleration-strategy selector service.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC listen address host:port (port 0 = any free port)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics HTTP address host:port (port 0 = any free port; empty = off)");
ABSL_FLAG(std::string, data_dir, "./var/accelsel", "RocksDB data folder (created if missing)");
ABSL_FLAG(std::string, seed_csv, "",
          "LLM-Inference-Bench CSV imported at start-up if the store holds no runs (empty = no seeding)");
ABSL_FLAG(std::string, descriptors_dir, "data/descriptors",
          "Folder with models.csv and accelerators.csv used by --seed_csv");
ABSL_FLAG(bool, sync_writes, true,
          "fsync the write-ahead log before acknowledging a report (false: survives kill -9, not power loss)");
ABSL_FLAG(double, exploration_rate, 0.05,
          "Probability of placing a non-top candidate first when the caller allows exploration (0 = never)");
ABSL_FLAG(absl::Duration, retrain_interval, absl::Minutes(5), "Retrain the meta-model this often (0 = no timer)");
ABSL_FLAG(uint64_t, retrain_min_new_runs, 10000, "Retrain after this many new runs (0 = no count trigger)");
ABSL_FLAG(bool, trainer, true, "Run the background trainer");
ABSL_FLAG(uint32_t, stream_window, 512, "Reports a ReportRun stream may have in flight before reading pauses");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "How long SIGTERM waits for in-flight calls before cancelling them");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "accelsel-server: ranks LLM acceleration strategies from the network's telemetry.\n"
      "Usage: accelsel-server [--listen=127.0.0.1:50051] [--metrics_listen=127.0.0.1:9464] "
      "[--data_dir=./var/accelsel] [--seed_csv=FILE] ...\nSIGTERM/SIGINT: drain and exit 0.");
  absl::ParseCommandLine(argc, argv);

  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  accelsel::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.seed_csv = absl::GetFlag(FLAGS_seed_csv);
  options.descriptors_dir = absl::GetFlag(FLAGS_descriptors_dir);
  options.sync_writes = absl::GetFlag(FLAGS_sync_writes);
  options.exploration_rate = absl::GetFlag(FLAGS_exploration_rate);
  options.retrain_interval = absl::GetFlag(FLAGS_retrain_interval);
  options.retrain_min_new_runs = absl::GetFlag(FLAGS_retrain_min_new_runs);
  options.trainer_enabled = absl::GetFlag(FLAGS_trainer);
  options.stream_window = absl::GetFlag(FLAGS_stream_window);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  if (options.exploration_rate < 0 || options.exploration_rate > 1) {
    std::cerr << "accelsel-server: --exploration_rate must be in [0, 1]\n";
    return 2;
  }
  if (options.stream_window == 0) {
    std::cerr << "accelsel-server: --stream_window must be >= 1\n";
    return 2;
  }

  auto server = accelsel::server::Server::Start(options);
  if (!server.ok()) {
    std::cerr << "accelsel-server: " << server.status().message() << "\n";
    return 1;
  }
  auto& core = (*server)->core();
  std::cout << "accelsel-server listening on " << options.listen.substr(0, options.listen.rfind(':')) << ":"
            << (*server)->port() << " (gRPC), metrics on "
            << (options.metrics_listen.empty()
                    ? std::string("-")
                    : absl::StrCat(options.metrics_listen.substr(0, options.metrics_listen.rfind(':')), ":",
                                   (*server)->metrics_port(), "/metrics"))
            << "; data in " << options.data_dir << " (" << core.store()->RunCount() << " runs)" << std::endl;

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cout << "accelsel-server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", draining" << std::endl;
  (*server)->Shutdown();
  std::cout << "accelsel-server: stopped" << std::endl;
  return 0;
}
