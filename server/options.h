// ServerOptions: every tunable of the service in one place, documented the RocksDB way (unit, default, meaning
// of 0). main.cc maps flags onto it; tests build it directly.
#ifndef ACCELSEL_SERVER_OPTIONS_H_
#define ACCELSEL_SERVER_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cluster/run_stream.h"
#include "server/access.h"
#include "server/validate.h"

namespace rocksdb {
class Env;
}

namespace accelsel::server {

struct ClusterOptions {
  // The NATS connection and the stream of reports: servers (empty = cluster mode off), stream and subject, the
  // stream's replicas and duplicate window, the publish timeout (a batch not acknowledged within it is answered
  // UNAVAILABLE, and the client resends), authentication and TLS.
  cluster::RunStreamOptions nats;
  // Reports per publish batch, and stream messages per applied WriteBatch, at most.
  size_t max_batch = 1024;
  // Models (docs/SCALE.md, "Cluster mode: models"): the trainer lease's period (a dead trainer is replaced within
  // about two), this replica's name in the lease and in logs (empty = host name and process id), and how long a
  // replica waits for the trainer's answer to a forwarded Retrain, PinModel or RollbackModel.
  absl::Duration trainer_lease = absl::Seconds(10);
  std::string replica_id;
  absl::Duration control_timeout = absl::Minutes(10);
  // Decisions (docs/SCALE.md, "Cluster mode: decisions"): how long a run waits for its decision to arrive on the
  // decision stream before it counts as an unknown join (DecisionLogOptions::join_wait in cluster mode).
  absl::Duration decision_join_wait = absl::Seconds(30);
  // TEST HOOK: runs on the applier thread before it stores each batch of stream messages (a test blocks here to
  // hold a replica behind the stream).
  std::function<void()> before_apply;
};

struct DecisionLogOptions {
  // Log decisions and join reports at all. Off: SelectAccelerator answers carry ids that join nothing.
  bool enabled = true;
  // Events (decisions and report joins) waiting for the writer thread; more are dropped and counted. At about
  // 1 KiB per decision the default holds 64 MiB at most.
  size_t queue_capacity = 65536;
  // Retention: decisions older than this are deleted, and their ids then join as "expired".
  absl::Duration max_age = absl::Hours(24 * 7);
  // Retention: the oldest decisions are deleted while the log's records (keys + values) exceed this.
  uint64_t max_bytes = uint64_t{1} << 30;
  // Decisions kept in memory for joins (older ones are read back from the store).
  size_t recent_capacity = 16384;
  // Drift: the trainer is woken when the mean absolute percentage error of the serving version's last
  // `drift_window` scored runs exceeds `drift_factor` x its held-out MAPE. drift_factor 0 = off.
  double drift_factor = 2.0;
  size_t drift_window = 200;
  // At most one drift wake-up per this interval.
  absl::Duration drift_cooldown = absl::Minutes(5);
  // Cluster mode (docs/SCALE.md, "Cluster mode: decisions"): this replica's id. Every replica holds every replica's
  // decisions (a stream of their own carries them) and joins every run with its decision; decisions logged under
  // another id feed the drift window like this replica's own, but the accelsel_live_* series count only this
  // replica's decisions, so that a sum over replicas counts each once. Empty = every decision is this process's own.
  std::string replica_id;
  // How long a run whose decision this replica does not hold yet waits for it (it may still come on the decision
  // stream) before it counts as unknown; at most queue_capacity runs wait at once. Zero = no waiting (one process
  // logs each decision before its id reaches the node).
  absl::Duration join_wait = absl::ZeroDuration();
  // TEST HOOK: the clock, ms since the epoch. Null = absl::Now().
  std::function<int64_t()> now_ms;
  // TEST HOOK: runs on the writer thread each time it has taken events from the queue, before processing them
  // (a test blocks here to fill the queue).
  std::function<void()> on_take;
};

struct ServerOptions {
  // gRPC listen address, host:port. Port 0 = any free port (the bound port is reported by Server::port()).
  std::string listen = "127.0.0.1:50051";
  // Prometheus /metrics HTTP listen address, host:port. Port 0 = any free port. Empty = no metrics endpoint.
  std::string metrics_listen = "127.0.0.1:9464";
  // RocksDB folder; created if missing.
  std::string data_dir = "./var/accelsel";
  // LLM-Inference-Bench CSV imported at start-up when the store holds no runs. Empty = no seeding.
  std::string seed_csv;
  // Descriptor tables (models.csv, accelerators.csv): used by the seed import, and to fill the descriptors a
  // request's or a report's context leaves unset by model and accelerator name (server/descriptor_fill.h). A folder
  // holding neither file = no filling; broken tables stop the start.
  std::string descriptors_dir = "data/descriptors";
  // fsync the WAL before acknowledging. false survives kill -9 but not power loss.
  bool sync_writes = true;
  // Folder under which ModelAdmin.Backup may create backups (on the server's file system; the same file system as
  // data_dir makes a backup hard links, near-instant). Empty = Backup is refused.
  std::string backup_dir;
  // Runs older than this are deleted in the background (server/retention.h), every run_retention_interval.
  // 0 = keep every run.
  absl::Duration run_retention = absl::ZeroDuration();
  absl::Duration run_retention_interval = absl::Minutes(10);
  // Probability of exploring when a caller allows it. 0 disables exploration.
  double exploration_rate = 0.05;
  // Node ids the operator vouches for, besides the seed import's: like the seed, their runs keep their full weight
  // in a context only they have measured (others' count as at most 3 runs) and they are never distrusted. For nodes
  // the operator runs itself, e.g. the one node of a single-machine deployment.
  std::vector<std::string> vouched_nodes;
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
  // Runs a retrain holds at most, after the node-share thinning (model/row_cap.h: water-filling over the (context,
  // strategy) cells, newest runs first): its training runs and the held-out runs it scores on together, each side its
  // share of the runs left (server/training_set.h, SplitRowCap), so a retrain of any store holds what one of this
  // many runs holds. 0 = all. The store is read in two passes (server/training_set.h): a retrain holds the runs
  // this keeps, plus about 100 bytes of keys per stored run while choosing them.
  size_t max_training_rows = 1000000;
  // Nice level (0..19) of the thread that trains and evaluates a candidate model, whether started by the timer or
  // by the Retrain RPC. 19 = training only gets CPU the RPC threads leave idle, so a retrain does not raise
  // SelectAccelerator latency (docs/BENCHMARKS.md). 0 = same priority as the RPC threads.
  int trainer_nice = 19;
  // Boosters the trainer fits at once, each on one thread (model::TrainOptions::threads), and the threads each pass
  // of its read of the store uses (TrainingSetOptions::scan_threads); at the trainer's nice level they only use CPU
  // the RPC threads leave idle. 1 = one core for training at most.
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
  // The decision log, live quality and drift (server/decision_log.h).
  DecisionLogOptions decision_log;
  // Cluster mode for reports (docs/SCALE.md, "Cluster mode: reports"): each validated report is published to a
  // NATS JetStream stream and acknowledged once the stream has it; every replica applies the stream to its own
  // store. Empty `nats_servers` = single-process mode (the default): none of the cluster fields is read.
  ClusterOptions cluster;
  // Off-policy evaluation before promotion: the estimates decide only when the effective sample size of their
  // importance weights reaches this; below it the held-out rule alone decides. 0 = never use them.
  double ope_min_ess = 200;
  // How far back the off-policy evaluation reads logged decisions, and how many at most (the newest).
  absl::Duration ope_window = absl::Hours(24);
  size_t ope_max_decisions = 20000;

  // --- Transport security and access (docs/OPERATIONS.md, "Security model") ---
  // PEM server certificate chain and private key. Both empty = plaintext; one without the other is an error.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA bundle for client certificates. Set = mutual TLS: clients must present a certificate it signed.
  std::string tls_client_ca_file;
  // How often gRPC checks the TLS files above for new contents and loads them into new handshakes (whole seconds;
  // open connections keep the certificate they began with). At least 1 s.
  absl::Duration tls_refresh_interval = absl::Seconds(10);
  // Token file, rate limits, stream cap (see server/access.h).
  AccessOptions access;
  // How often the server checks the --auth_tokens file (and the TLS files) for changes by their inode, size and
  // mtime, and reloads a changed token file as SIGHUP does: Kubernetes updates a mounted Secret by swapping a
  // symlink, without a signal. 0 = no watch (SIGHUP only).
  absl::Duration config_watch_interval = absl::Seconds(5);
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

  // --- Keepalive (docs/OPERATIONS.md, "Keepalive"): ReportRun streams live for hours, across NAT and WAN ---
  // The server pings a connection after this long without a frame from the peer, idle connections included, so
  // that NAT entries stay open and dead peers are found. 0 = gRPC's default (2 hours).
  absl::Duration keepalive_time = absl::Seconds(60);
  // A ping not answered within this closes the connection (and fails its streams). 0 = gRPC's default (20 s).
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Least time between a client's pings while the server sends it nothing; a faster ping is a strike, and after
  // keepalive_max_ping_strikes strikes the server closes the connection (GOAWAY "too_many_pings"). Clients
  // should ping no more often than this (the C++ and Python clients ping every 60 s). 0 = gRPC's default (5 min).
  absl::Duration keepalive_min_client_interval = absl::Seconds(30);
  // Pings beyond keepalive_min_client_interval the server bears before it closes the connection. 0 = unlimited.
  int keepalive_max_ping_strikes = 2;
  // Close each client connection gracefully (GOAWAY) after about this long, so that clients that balance over
  // several replicas by DNS (dns:///name) resolve again and reach replicas added since they connected. Calls open
  // then run to their end on the old connection (no grace limit: a ReportRun stream is never cut); new calls go
  // to a new one. gRPC spreads the age by ±10 % so that connections made together do not all close together.
  // 0 = never (the single-process default: there is nothing else to reach).
  absl::Duration max_connection_age = absl::ZeroDuration();

  // Serve gRPC's channelz service (grpc.channelz.v1.Channelz): live channels, servers and sockets with their
  // counters, for debugging connections. It exposes internals (peer addresses): with auth_tokens, operators only.
  bool channelz = false;
  // TEST HOOK: file-system Env under the store (not owned; must outlive the server). nullptr = the default Env.
  // Tests pass a fault-injecting Env to simulate a full disk.
  rocksdb::Env* storage_env = nullptr;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_OPTIONS_H_
