// accelsel-server: the acceleration-strategy selector service.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cluster/run_stream.h"
#include "server/model_manager.h"
#include "server/options.h"
#include "server/server.h"
#include "util/log.h"
#include "util/version.h"

namespace {

// The flags' defaults are those of a default-constructed ServerOptions: written once, in server/options.h.
const accelsel::server::ServerOptions& Defaults() {
  static const accelsel::server::ServerOptions defaults;
  return defaults;
}

}  // namespace

ABSL_FLAG(std::string, listen, Defaults().listen, "gRPC listen address host:port (port 0 = any free port)");
ABSL_FLAG(std::string, metrics_listen, Defaults().metrics_listen,
          "Prometheus /metrics HTTP address host:port (port 0 = any free port; empty = off)");
ABSL_FLAG(std::string, data_dir, Defaults().data_dir, "RocksDB data folder (created if missing)");
ABSL_FLAG(std::string, seed_csv, Defaults().seed_csv,
          "LLM-Inference-Bench CSV imported at start-up if the store holds no runs (empty = no seeding)");
ABSL_FLAG(std::string, descriptors_dir, Defaults().descriptors_dir,
          "Folder with models.csv and accelerators.csv: used by --seed_csv, and to fill the descriptors a request's "
          "context leaves unset by model and accelerator name (none there = no filling)");
ABSL_FLAG(bool, sync_writes, Defaults().sync_writes,
          "fsync the write-ahead log before acknowledging a report (false: survives kill -9, not power loss)");
ABSL_FLAG(std::string, backup_dir, Defaults().backup_dir,
          "Folder under which `accelsel admin backup DIR` (ModelAdmin.Backup) creates online backups; put it on the "
          "data folder's file system for hard-linked, near-instant copies (empty = backups refused)");
ABSL_FLAG(absl::Duration, run_retention, Defaults().run_retention,
          "Delete stored runs older than this, in the background (e.g. 2160h = 90 days; 0 = keep every run)");
ABSL_FLAG(absl::Duration, run_retention_interval, Defaults().run_retention_interval,
          "Time between passes of --run_retention");
ABSL_FLAG(double, exploration_rate, Defaults().exploration_rate,
          "Probability of placing a non-top candidate first when the caller allows exploration (0 = never)");
ABSL_FLAG(std::vector<std::string>, vouched_nodes, {},
          "Comma-separated node ids the operator vouches for (its own nodes): their runs keep their full weight where "
          "only they have measured, and they are never distrusted");
ABSL_FLAG(absl::Duration, retrain_interval, Defaults().retrain_interval,
          "Retrain the meta-model this often (0 = no timer)");
ABSL_FLAG(uint64_t, retrain_min_new_runs, Defaults().retrain_min_new_runs,
          "Retrain after this many new runs (0 = no count trigger)");
ABSL_FLAG(double, retrain_growth, Defaults().retrain_growth,
          "Also retrain when the runs stored since the last retrain reach this share of the store then (0 = off)");
ABSL_FLAG(uint64_t, retrain_growth_min_runs, Defaults().retrain_growth_min_runs,
          "Fewest new runs the growth trigger retrains on");
ABSL_FLAG(bool, trainer, Defaults().trainer_enabled, "Run the background trainer");
ABSL_FLAG(uint64_t, max_training_rows, uint64_t{Defaults().max_training_rows},
          "Runs a retrain holds at most (after the node-share thinning), the training runs and the held-out runs it "
          "scores on together, each side its share, spread over the task contexts and strategies, newest first; "
          "0 = all");
ABSL_FLAG(uint64_t, seed, Defaults().seed,
          "Seed of the exploration randomness (0 = a fresh random seed per thread); with a seed, the same sequence "
          "of requests gets the same first places, so simulations repeat");
ABSL_FLAG(int, trainer_nice, Defaults().trainer_nice,
          "Nice level (0..19) of model training; 19 = train only on CPU the RPC threads leave idle, 0 = no change");
ABSL_FLAG(int, trainer_threads, Defaults().trainer_threads,
          "Boosters trained at once during a retrain, and threads its reads of the store use (1..64, one thread "
          "each, at --trainer_nice)");
ABSL_FLAG(uint32_t, stream_window, static_cast<uint32_t>(Defaults().stream_window),
          "Reports a ReportRun stream may have in flight before reading pauses");
ABSL_FLAG(absl::Duration, shutdown_grace, Defaults().shutdown_grace,
          "How long SIGTERM waits for in-flight calls before cancelling them");
ABSL_FLAG(std::string, tls_cert, Defaults().tls_cert_file, "PEM server certificate chain (with --tls_key: serve TLS)");
ABSL_FLAG(std::string, tls_key, Defaults().tls_key_file, "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, Defaults().tls_client_ca_file,
          "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)");
ABSL_FLAG(absl::Duration, tls_refresh_interval, Defaults().tls_refresh_interval,
          "How often gRPC re-reads --tls_cert/--tls_key/--tls_client_ca; new handshakes use what it read (>= 1s)");
ABSL_FLAG(absl::Duration, config_watch_interval, Defaults().config_watch_interval,
          "How often to check --auth_tokens (and the TLS files) for changes; a changed token file is reloaded as on "
          "SIGHUP (0 = SIGHUP only)");
ABSL_FLAG(std::string, auth_tokens, Defaults().access.auth_tokens_file,
          "File of 'TOKEN ROLE NODE_ID' lines (ROLE: node|operator); callers send 'authorization: Bearer TOKEN'. "
          "Empty = no authentication (loopback only unless --allow_insecure)");
ABSL_FLAG(bool, allow_insecure, Defaults().allow_insecure,
          "Serve a non-loopback --listen address without --auth_tokens");
ABSL_FLAG(double, rate_calls_per_s, Defaults().access.calls_per_s,
          "Unary calls per second per node (token bucket; 0 = unlimited)");
ABSL_FLAG(double, rate_call_burst, Defaults().access.call_burst, "Bucket size of --rate_calls_per_s");
ABSL_FLAG(double, rate_reports_per_s, Defaults().access.reports_per_s,
          "Run reports per second per node (token bucket; 0 = unlimited)");
ABSL_FLAG(double, rate_report_burst, Defaults().access.report_burst, "Bucket size of --rate_reports_per_s");
ABSL_FLAG(bool, rate_limit_anonymous, Defaults().access.limit_anonymous,
          "Apply the per-node limits to unauthenticated callers too, keyed by peer host");
ABSL_FLAG(uint32_t, max_streams_per_node, Defaults().access.max_streams_per_node,
          "Concurrent ReportRun streams per node (0 = unlimited)");
ABSL_FLAG(absl::Duration, admin_call_deadline, Defaults().admin_call_deadline,
          "Server-side deadline of Retrain/PinModel/RollbackModel (0 = none)");
ABSL_FLAG(uint64_t, grpc_memory_bytes, uint64_t{Defaults().grpc_memory_bytes},
          "Memory gRPC may use for buffers, bytes (0 = gRPC default)");
ABSL_FLAG(absl::Duration, keepalive_time, Defaults().keepalive_time,
          "Ping a client connection after this long without a frame from it, so that NAT entries stay open and "
          "dead peers are found (0 = gRPC's default, 2h)");
ABSL_FLAG(absl::Duration, keepalive_timeout, Defaults().keepalive_timeout,
          "Close a connection whose ping is not answered within this (0 = gRPC's default, 20s)");
ABSL_FLAG(absl::Duration, keepalive_min_client_interval, Defaults().keepalive_min_client_interval,
          "Least time between a client's pings while the server sends it nothing; after "
          "--keepalive_max_ping_strikes faster ones the connection is closed with GOAWAY too_many_pings "
          "(0 = gRPC's default, 5m)");
ABSL_FLAG(int, keepalive_max_ping_strikes, Defaults().keepalive_max_ping_strikes,
          "Too-fast client pings borne before closing the connection (0 = unlimited)");
ABSL_FLAG(absl::Duration, max_connection_age, Defaults().max_connection_age,
          "Close each client connection gracefully (GOAWAY) after about this long (+-10%), so that clients "
          "balancing by DNS over replicas resolve again; open calls and streams run to their end (0 = never)");
ABSL_FLAG(bool, channelz, Defaults().channelz,
          "Serve gRPC's channelz service (grpc.channelz.v1.Channelz: channels, sockets and their counters); with "
          "--auth_tokens operators only");
ABSL_FLAG(bool, decision_log, Defaults().decision_log.enabled,
          "Log every SelectAccelerator answer and join it with the run reported for it (live quality, drift, "
          "off-policy evaluation); false = none of them");
ABSL_FLAG(absl::Duration, decision_log_max_age, Defaults().decision_log.max_age,
          "Decision-log retention by age: older decisions are deleted (their ids then join as expired)");
ABSL_FLAG(uint64_t, decision_log_max_mb, Defaults().decision_log.max_bytes >> 20,
          "Decision-log retention by size, MiB of records: the oldest go first");
ABSL_FLAG(uint64_t, decision_log_queue, uint64_t{Defaults().decision_log.queue_capacity},
          "Decisions and joins waiting to be written; more are dropped and counted, never waited for");
ABSL_FLAG(double, drift_factor, Defaults().decision_log.drift_factor,
          "Wake the trainer when the serving model's live MAPE over --drift_window runs exceeds this x its "
          "held-out MAPE (0 = off)");
ABSL_FLAG(uint64_t, drift_window, uint64_t{Defaults().decision_log.drift_window},
          "Scored runs of the serving version in the drift window");
ABSL_FLAG(double, ope_min_ess, Defaults().ope_min_ess,
          "Effective sample size the off-policy estimates need before the promotion rule uses them (0 = never)");
ABSL_FLAG(std::vector<std::string>, nats, Defaults().cluster.nats.servers,
          "Cluster mode for reports (docs/SCALE.md): comma-separated NATS server URLs (nats://host:port) with "
          "JetStream. Each report is acknowledged once the stream holds it, and every replica applies the stream to "
          "its own --data_dir. Empty = single-process mode");
ABSL_FLAG(std::string, nats_stream, Defaults().cluster.nats.stream,
          "JetStream stream of the reports (created if missing; subject accelsel.runs)");
ABSL_FLAG(int, nats_stream_replicas, Defaults().cluster.nats.replicas,
          "Copies JetStream keeps of each report when it creates the stream (1..5, at most the NATS servers)");
ABSL_FLAG(absl::Duration, nats_duplicate_window, Defaults().cluster.nats.duplicate_window,
          "The stream drops a repeated run id within this window when it creates the stream (replicas catch older "
          "repeats by run id)");
ABSL_FLAG(absl::Duration, nats_stream_max_age, absl::ZeroDuration(),
          "Retention of the report stream when a replica creates it: messages older than this are removed (0 = "
          "kept). A replica down for longer cannot catch up from the stream (docs/SCALE.md, Retention)");
ABSL_FLAG(int64_t, nats_stream_max_bytes, 0,
          "Retention of the report stream when a replica creates it: beyond this many bytes the oldest messages are "
          "removed (0 = unlimited)");
ABSL_FLAG(absl::Duration, nats_publish_timeout, Defaults().cluster.nats.publish_timeout,
          "Reports the stream has not acknowledged within this are answered UNAVAILABLE, for the node to resend");
ABSL_FLAG(std::string, nats_creds, "",
          "NATS user credentials file (user JWT and nkey seed, as nsc writes it) for the --nats connection");
ABSL_FLAG(std::string, nats_user, "", "User name for the --nats connection (with --nats_password)");
ABSL_FLAG(std::string, nats_password, "", "Password for the --nats connection (with --nats_user)");
ABSL_FLAG(std::string, nats_tls_ca, "",
          "PEM CA bundle the NATS servers' certificates must chain to; set = the --nats connection uses TLS");
ABSL_FLAG(std::string, nats_tls_cert, "",
          "PEM client certificate chain for NATS servers that verify clients (mutual TLS; with --nats_tls_key)");
ABSL_FLAG(std::string, nats_tls_key, "", "PEM private key of --nats_tls_cert");
ABSL_FLAG(absl::Duration, nats_trainer_lease, Defaults().cluster.trainer_lease,
          "Cluster mode: the trainer lease's period. One replica with --trainer holds it and trains for all; if it "
          "dies another takes over within about two periods (at least 1s)");
ABSL_FLAG(std::string, replica_id, "",
          "Cluster mode: this replica's name in the trainer lease, the decision log and the logs (default: host name "
          "and process id; set it to keep one name across restarts)");
ABSL_FLAG(absl::Duration, nats_decision_join_wait, Defaults().cluster.decision_join_wait,
          "Cluster mode: how long a report whose decision another replica made waits for that decision to arrive "
          "on the decision stream before it counts as an unknown join (at least 1s)");

ABSL_FLAG(accelsel::log::Level, log_level, accelsel::log::Level::kInfo,
          "Least severe log line written to stderr (one JSON object per line): debug, info, warn or error");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "accelsel-server: ranks LLM acceleration strategies from the network's telemetry.\n"
      "Usage: accelsel-server [--listen=127.0.0.1:50051] [--metrics_listen=127.0.0.1:9464] "
      "[--data_dir=./var/accelsel] [--seed_csv=FILE] ...\nSIGTERM/SIGINT: drain and exit 0. SIGHUP: reload "
      "--auth_tokens.");
  accelsel::util::SetFlagsVersion("accelsel-server");
  absl::ParseCommandLine(argc, argv);
  // From here on stderr carries JSON lines only (docs/OPERATIONS.md, "Logs"); usage errors below stay plain text,
  // like absl's own flag errors, for the person at the terminal.
  accelsel::log::Init(absl::GetFlag(FLAGS_log_level));
  namespace log = accelsel::log;
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex lock (ours and gRPC's) would also update a
  // process-wide lock graph under a global lock: measurable per-call CPU for a check the tests already exercise.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Block the stop signals and SIGHUP in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  accelsel::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.seed_csv = absl::GetFlag(FLAGS_seed_csv);
  options.descriptors_dir = absl::GetFlag(FLAGS_descriptors_dir);
  options.sync_writes = absl::GetFlag(FLAGS_sync_writes);
  options.backup_dir = absl::GetFlag(FLAGS_backup_dir);
  options.run_retention = absl::GetFlag(FLAGS_run_retention);
  options.run_retention_interval = absl::GetFlag(FLAGS_run_retention_interval);
  options.exploration_rate = absl::GetFlag(FLAGS_exploration_rate);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.vouched_nodes = absl::GetFlag(FLAGS_vouched_nodes);
  options.retrain_interval = absl::GetFlag(FLAGS_retrain_interval);
  options.retrain_min_new_runs = absl::GetFlag(FLAGS_retrain_min_new_runs);
  options.retrain_growth = absl::GetFlag(FLAGS_retrain_growth);
  options.retrain_growth_min_runs = absl::GetFlag(FLAGS_retrain_growth_min_runs);
  options.trainer_enabled = absl::GetFlag(FLAGS_trainer);
  options.max_training_rows = absl::GetFlag(FLAGS_max_training_rows);
  options.trainer_nice = absl::GetFlag(FLAGS_trainer_nice);
  options.trainer_threads = absl::GetFlag(FLAGS_trainer_threads);
  options.stream_window = absl::GetFlag(FLAGS_stream_window);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.tls_refresh_interval = absl::GetFlag(FLAGS_tls_refresh_interval);
  options.config_watch_interval = absl::GetFlag(FLAGS_config_watch_interval);
  options.access.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens);
  options.allow_insecure = absl::GetFlag(FLAGS_allow_insecure);
  options.access.calls_per_s = absl::GetFlag(FLAGS_rate_calls_per_s);
  options.access.call_burst = absl::GetFlag(FLAGS_rate_call_burst);
  options.access.reports_per_s = absl::GetFlag(FLAGS_rate_reports_per_s);
  options.access.report_burst = absl::GetFlag(FLAGS_rate_report_burst);
  options.access.limit_anonymous = absl::GetFlag(FLAGS_rate_limit_anonymous);
  options.access.max_streams_per_node = absl::GetFlag(FLAGS_max_streams_per_node);
  options.admin_call_deadline = absl::GetFlag(FLAGS_admin_call_deadline);
  options.grpc_memory_bytes = absl::GetFlag(FLAGS_grpc_memory_bytes);
  options.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  options.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  options.keepalive_min_client_interval = absl::GetFlag(FLAGS_keepalive_min_client_interval);
  options.keepalive_max_ping_strikes = absl::GetFlag(FLAGS_keepalive_max_ping_strikes);
  options.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  options.channelz = absl::GetFlag(FLAGS_channelz);
  options.decision_log.enabled = absl::GetFlag(FLAGS_decision_log);
  options.decision_log.max_age = absl::GetFlag(FLAGS_decision_log_max_age);
  options.decision_log.max_bytes = absl::GetFlag(FLAGS_decision_log_max_mb) << 20;
  options.decision_log.queue_capacity = absl::GetFlag(FLAGS_decision_log_queue);
  options.decision_log.drift_factor = absl::GetFlag(FLAGS_drift_factor);
  options.decision_log.drift_window = absl::GetFlag(FLAGS_drift_window);
  options.ope_min_ess = absl::GetFlag(FLAGS_ope_min_ess);
  options.cluster.nats.servers = absl::GetFlag(FLAGS_nats);
  options.cluster.nats.stream = absl::GetFlag(FLAGS_nats_stream);
  options.cluster.nats.replicas = absl::GetFlag(FLAGS_nats_stream_replicas);
  options.cluster.nats.duplicate_window = absl::GetFlag(FLAGS_nats_duplicate_window);
  options.cluster.nats.publish_timeout = absl::GetFlag(FLAGS_nats_publish_timeout);
  options.cluster.nats.creds_file = absl::GetFlag(FLAGS_nats_creds);
  options.cluster.nats.user = absl::GetFlag(FLAGS_nats_user);
  options.cluster.nats.password = absl::GetFlag(FLAGS_nats_password);
  options.cluster.nats.tls_ca_file = absl::GetFlag(FLAGS_nats_tls_ca);
  options.cluster.nats.tls_cert_file = absl::GetFlag(FLAGS_nats_tls_cert);
  options.cluster.nats.tls_key_file = absl::GetFlag(FLAGS_nats_tls_key);
  options.cluster.trainer_lease = absl::GetFlag(FLAGS_nats_trainer_lease);
  options.cluster.decision_join_wait = absl::GetFlag(FLAGS_nats_decision_join_wait);
  options.cluster.nats.max_age = absl::GetFlag(FLAGS_nats_stream_max_age);
  options.cluster.nats.max_bytes = absl::GetFlag(FLAGS_nats_stream_max_bytes);
  options.cluster.replica_id = absl::GetFlag(FLAGS_replica_id);
  if (!options.cluster.nats.servers.empty()) {
    if (!accelsel::cluster::RunStream::Available()) {
      std::cerr << "accelsel-server: --nats: this build has no NATS client (install libnats-dev and rebuild)\n";
      return 2;
    }
    for (const std::string& url : options.cluster.nats.servers) {
      if (url.empty()) {
        std::cerr << "accelsel-server: --nats must be NATS URLs separated by commas, none empty\n";
        return 2;
      }
    }
    if (options.cluster.nats.replicas < 1 || options.cluster.nats.replicas > 5 ||
        options.cluster.nats.duplicate_window <= absl::ZeroDuration() ||
        options.cluster.nats.publish_timeout <= absl::ZeroDuration() || options.cluster.nats.stream.empty() ||
        options.cluster.trainer_lease < absl::Seconds(1) || options.cluster.nats.max_age < absl::ZeroDuration() ||
        options.cluster.nats.max_bytes < 0 || options.cluster.decision_join_wait < absl::Seconds(1)) {
      std::cerr << "accelsel-server: --nats_stream_replicas must be in [1, 5], --nats_duplicate_window and "
                   "--nats_publish_timeout > 0, --nats_stream not empty, --nats_trainer_lease and "
                   "--nats_decision_join_wait at least 1s, --nats_stream_max_age and --nats_stream_max_bytes >= 0\n";
      return 2;
    }
  }
  for (const std::string& id : options.vouched_nodes) {
    if (id.empty()) {
      std::cerr << "accelsel-server: --vouched_nodes must be node ids separated by commas, none empty\n";
      return 2;
    }
  }
  if (options.run_retention < absl::ZeroDuration() || options.run_retention_interval <= absl::ZeroDuration()) {
    std::cerr << "accelsel-server: --run_retention must be >= 0 and --run_retention_interval > 0\n";
    return 2;
  }
  if (options.keepalive_time < absl::ZeroDuration() || options.keepalive_timeout < absl::ZeroDuration() ||
      options.keepalive_min_client_interval < absl::ZeroDuration() || options.keepalive_max_ping_strikes < 0) {
    std::cerr << "accelsel-server: the --keepalive_* flags must be >= 0\n";
    return 2;
  }
  if (options.max_connection_age < absl::ZeroDuration() ||
      (options.max_connection_age > absl::ZeroDuration() && options.max_connection_age < absl::Seconds(1))) {
    std::cerr << "accelsel-server: --max_connection_age must be 0 (never) or at least 1s\n";
    return 2;
  }
  if (options.exploration_rate < 0 || options.exploration_rate > 1) {
    std::cerr << "accelsel-server: --exploration_rate must be in [0, 1]\n";
    return 2;
  }
  if (!(options.retrain_growth >= 0 && options.retrain_growth <= 1e6)) {
    std::cerr << "accelsel-server: --retrain_growth must be a number in [0, 1e6]\n";
    return 2;
  }
  if (options.trainer_threads < 1 || options.trainer_threads > 64) {
    std::cerr << "accelsel-server: --trainer_threads must be in [1, 64]\n";
    return 2;
  }
  if (options.trainer_nice < 0 || options.trainer_nice > 19) {
    std::cerr << "accelsel-server: --trainer_nice must be in [0, 19]\n";
    return 2;
  }
  if (options.decision_log.max_age <= absl::ZeroDuration() || options.decision_log.max_bytes == 0 ||
      options.decision_log.queue_capacity == 0) {
    std::cerr << "accelsel-server: --decision_log_max_age, --decision_log_max_mb and --decision_log_queue must be "
                 "> 0\n";
    return 2;
  }
  if (!(options.decision_log.drift_factor >= 0) || !(options.ope_min_ess >= 0)) {
    std::cerr << "accelsel-server: --drift_factor and --ope_min_ess must be numbers >= 0\n";
    return 2;
  }
  if (options.tls_refresh_interval < absl::Seconds(1) || options.config_watch_interval < absl::ZeroDuration()) {
    std::cerr << "accelsel-server: --tls_refresh_interval must be >= 1s and --config_watch_interval >= 0\n";
    return 2;
  }
  if (options.stream_window == 0) {
    std::cerr << "accelsel-server: --stream_window must be >= 1\n";
    return 2;
  }

  const absl::Time start = absl::Now();
  log::Info("starting", {{"pid", static_cast<int64_t>(getpid())},
                         {"listen", options.listen},
                         {"data_dir", options.data_dir},
                         {"seed_csv", options.seed_csv},
                         {"log_level", log::LevelName(absl::GetFlag(FLAGS_log_level))}});
  auto server = accelsel::server::Server::Start(options);
  if (!server.ok()) {
    log::Error("start_failed",
               {{"code", absl::StatusCodeToString(server.status().code())}, {"error", server.status().message()}});
    return 1;
  }
  auto& core = (*server)->core();
  uint64_t model_version = 0;
  if (auto serving = core.models().Serving()) model_version = serving->info.version();  // not held past this line
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  log::Info("start", {{"listen", absl::StrCat(host, ":", (*server)->port())},
                      {"port", (*server)->port()},
                      {"metrics_port", (*server)->metrics_port()},
                      {"data_dir", options.data_dir},
                      {"runs_stored", core.store()->RunCount()},
                      {"model_version", model_version},
                      {"tls", !options.tls_cert_file.empty()},
                      {"auth", !options.access.auth_tokens_file.empty()},
                      {"trainer", options.trainer_enabled},
                      {"descriptor_models", core.descriptors().models.size()},
                      {"descriptor_accelerator_names", core.descriptors().accelerators.size()},
                      {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  // The one stdout line: the readiness line scripts wait for (sim/server_process.cc, bench/run_all.sh, ...).
  std::cout << "accelsel-server listening on " << options.listen.substr(0, options.listen.rfind(':')) << ":"
            << (*server)->port() << " (gRPC), metrics on "
            << (options.metrics_listen.empty()
                    ? std::string("-")
                    : absl::StrCat(options.metrics_listen.substr(0, options.metrics_listen.rfind(':')), ":",
                                   (*server)->metrics_port(), "/metrics"))
            << "; data in " << options.data_dir << " (" << core.store()->RunCount() << " runs)" << std::endl;

  // SIGHUP: reload the token file and check the TLS files (docs/OPERATIONS.md, "Rotating tokens and
  // certificates"); the server keeps serving either way.
  int sig = 0;
  while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
    (*server)->ReloadConfig("sighup").IgnoreError();  // logged and counted by ReloadConfig
  }
  const absl::Time stop = absl::Now();
  log::Info("shutdown_begin", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                               {"grace_s", absl::ToDoubleSeconds(options.shutdown_grace)}});
  (*server)->Shutdown();
  server->reset();  // also ends the metrics endpoint and writes the last pending rate_limited line
  log::Info("shutdown_done", {{"seconds", absl::ToDoubleSeconds(absl::Now() - stop)}});
  return 0;
}
