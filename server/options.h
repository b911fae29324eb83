// ServerOptions: every tunable of the service in one place, documented the RocksDB way (unit, default, meaning
// of 0). main.cc maps flags onto it; tests build it directly.
#ifndef ACCELSEL_SERVER_OPTIONS_H_
#define ACCELSEL_SERVER_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "server/validate.h"

namespace accelsel::server {

struct ServerOptions {
  // gRPC listen address, host:port. Port 0 = any free port (the bound port is reported by Server::port()).
  std::string listen = "127.0.0.1:50051";
  // Prometheus /metrics HTTP listen address, host:port. Port 0 = any free port. Empty = no metrics endpoint.
  std::string metrics_listen = "127.0.0.1:9464";
  // RocksDB folder; created if missing.
  std::string data_dir = "./var/accelsel";
  // LLM-Inference-Bench CSV imported at start-up when the store holds no runs. Empty = no seeding.
  std::string seed_csv;
  // Descriptor tables (models.csv, accelerators.csv) used by the seed import.
  std::string descriptors_dir = "data/descriptors";
  // fsync the WAL before acknowledging. false survives kill -9 but not power loss.
  bool sync_writes = true;
  // Probability of exploring when a caller allows it. 0 disables exploration.
  double exploration_rate = 0.05;
  // Trainer: retrain every interval (0 = no timer) and/or after this many new runs (0 = no count trigger).
  absl::Duration retrain_interval = absl::Minutes(5);
  uint64_t retrain_min_new_runs = 10000;
  // Run the trainer loop at all. Off in tests that drive training by hand.
  bool trainer_enabled = true;
  // Reports a single ReportRun stream may have in flight (read but not yet acknowledged). This is the stream's
  // backpressure: the server stops reading until acknowledgements catch up.
  size_t stream_window = 512;
  // Hard cap on any received gRPC message, bytes. Larger ones are refused by gRPC with RESOURCE_EXHAUSTED;
  // smaller ones above the per-message limits in `limits` get INVALID_ARGUMENT.
  size_t max_message_bytes = 8 << 20;
  // Seconds a graceful shutdown waits for in-flight calls before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(10);
  ValidationLimits limits;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_OPTIONS_H_
