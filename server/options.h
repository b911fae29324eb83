// ServerOptions: every tunable of the service in one place, documented the RocksDB way (unit, default, meaning
// of 0). main.cc maps flags onto it; tests build it directly.
#ifndef ACCELSEL_SERVER_OPTIONS_H_
#define ACCELSEL_SERVER_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "server/access.h"
#include "server/validate.h"

namespace rocksdb {
class Env;
}

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
  // Seed of the exploration randomness. 0 = each RPC thread seeds itself from std::random_device. Otherwise the
  // n-th SelectAccelerator call since start draws from a generator seeded by (seed, n): a run that sends the same
  // requests one at a time gets the same answers (model training is already deterministic), which the network
  // simulator's --deterministic mode relies on.
  uint64_t seed = 0;
  // Trainer: retrain every interval (0 = no timer) and/or after this many new runs (0 = no count trigger).
  absl::Duration retrain_interval = absl::Minutes(5);
  uint64_t retrain_min_new_runs = 10000;
  // Also retrain once the runs stored since the last retrain reach this share of the runs stored then (and at least
  // retrain_growth_min_runs): a cold network gets models at 200, 300, 450, ... runs. 0 = no growth trigger.
  double retrain_growth = 0.5;
  uint64_t retrain_growth_min_runs = 200;
  // Run the trainer loop at all. Off in tests that drive training by hand.
  bool trainer_enabled = true;
  // Nice level (0..19) of the thread that trains and evaluates a candidate model, whether started by the timer or
  // by the Retrain RPC. 19 = training only gets CPU the RPC threads leave idle, so a retrain does not raise
  // SelectAccelerator latency (docs/BENCHMARKS.md). 0 = same priority as the RPC threads.
  int trainer_nice = 19;
  // Boosters the trainer fits at once, each on one thread (model::TrainOptions::threads); at the trainer's nice
  // level they only use CPU the RPC threads leave idle. 1 = one core for training at most.
  int trainer_threads = 2;
  // Reports a single ReportRun stream may have in flight (read but not yet acknowledged). This is the stream's
  // backpressure: the server stops reading until acknowledgements catch up.
  size_t stream_window = 512;
  // Hard cap on any received gRPC message, bytes. Larger ones are refused by gRPC with RESOURCE_EXHAUSTED;
  // smaller ones above the per-message limits in `limits` get INVALID_ARGUMENT.
  size_t max_message_bytes = 8 << 20;
  // Seconds a graceful shutdown waits for in-flight calls before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(10);
  ValidationLimits limits;

  // --- Transport security and access (docs/OPERATIONS.md, "Security model") ---
  // PEM server certificate chain and private key. Both empty = plaintext; one without the other is an error.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA bundle for client certificates. Set = mutual TLS: clients must present a certificate it signed.
  std::string tls_client_ca_file;
  // Token file, rate limits, stream cap (see server/access.h).
  AccessOptions access;
  // Serve on a non-loopback address without --auth_tokens. Off: the server refuses to start instead.
  bool allow_insecure = false;
  // Server-side deadline of the blocking admin calls (Retrain, PinModel, RollbackModel): the call ends
  // DEADLINE_EXCEEDED after this, the work itself continues. 0 = none. Other unary calls run inline and are
  // bounded by `limits`.
  absl::Duration admin_call_deadline = absl::Minutes(10);
  // Memory gRPC may use for buffers across all connections, bytes (grpc::ResourceQuota). 0 = gRPC's default.
  size_t grpc_memory_bytes = 512u << 20;
  // Concurrent streams (calls) per HTTP/2 connection. 0 = gRPC's default.
  uint32_t max_concurrent_streams_per_connection = 100;
  // TEST HOOK: file-system Env under the store (not owned; must outlive the server). nullptr = the default Env.
  // Tests pass a fault-injecting Env to simulate a full disk.
  rocksdb::Env* storage_env = nullptr;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_OPTIONS_H_
