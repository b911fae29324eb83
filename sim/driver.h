// Plays a Network's jobs against a real accelsel-server as its nodes would: SelectAccelerator through the client
// library, the first place "run" (the Network's measured value) and reported with the decision_id through
// TelemetrySender. Either one job at a time, waiting for each report's acknowledgement and retraining at fixed job
// counts (deterministic), or with several workers at once while the server retrains on its own timer.
#ifndef ACCELSEL_SIM_DRIVER_H_
#define ACCELSEL_SIM_DRIVER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/network.h"
#include "util/progress.h"

namespace accelsel::sim {

inline constexpr uint32_t kNoChoice = UINT32_MAX;  // the select failed

struct DriverOptions {
  // The server, its replicas or a gRPC URI: client::ChannelTarget's form.
  std::string address;
  bool deterministic = false;
  // Retrain through the RPC after every this many jobs and wait for it (0 = never; the server's timer decides).
  uint64_t retrain_every_jobs = 0;
  bool all_candidates = false;
  bool exploration = true;
  // Free-running mode: jobs in flight at once, and the connections they share (each with one report stream
  // that carries the reports of every node mapped to it).
  int concurrency = 16;
  int channels = 4;
  // Free-running mode: jobs started per second across the network (job j starts no sooner than j / rate seconds
  // after the first), so that the server's trainer sees the run on a time scale like a network's. 0 = no pacing.
  double jobs_per_s = 0;
  // Authentication: empty = none. Otherwise the catalogue is registered and Retrain called with the operator
  // token, and each node calls with its own token (by node index) on its own report stream, since the server
  // attributes a stream's reports to its caller; the nodes are then spread over enough connections for the
  // server's per-connection stream limit.
  std::string operator_token;
  std::vector<std::string> node_tokens;
  // Prefix of run ids, so that repeated runs against one server do not collide.
  std::string run_tag;
  // Jobs between samples of GetModelInfo in deterministic mode (free-running mode samples by time).
  uint64_t sample_every_jobs = 1000;
  // Server RSS in bytes, sampled beside GetModelInfo; null when unknown.
  std::function<uint64_t()> rss;
  // Counts finished jobs for the progress line; null = none.
  Progress* progress = nullptr;
};

struct JobOutcome {
  uint32_t choice = kNoChoice;  // strategy index placed first
  bool explored = false;
  double selection_probability = 0;
  uint64_t model_version = 0;
};

// GetModelInfo (and RSS) at one point of the run.
struct ServerSample {
  uint64_t jobs_done = 0;
  double seconds = 0;  // since the first job
  uint64_t serving_version = 0;
  uint64_t runs_stored = 0;
  double holdout_mape = -1;  // of the serving model; -1 = none serving
  double holdout_coverage80 = -1;
  double holdout_top1 = -1;
  uint64_t rss_bytes = 0;
};

struct DriverResult {
  std::vector<JobOutcome> outcomes;  // by job index
  std::vector<ServerSample> samples;
  double warm_seconds = 0;
  double jobs_seconds = 0;   // first select to last select
  double drain_seconds = 0;  // first select to the last acknowledgement
  uint64_t selects_ok = 0;
  uint64_t select_errors = 0;
  std::vector<std::string> errors;  // the first few select/report errors
  uint64_t reports_sent = 0;        // warm + jobs
  uint64_t acked_durable = 0;
  uint64_t acked_duplicate = 0;
  uint64_t rejected = 0;
  uint64_t unacknowledged = 0;
  uint64_t runs_stored_before = 0;
  uint64_t runs_stored_after = 0;
  uint64_t retrains = 0;
  uint64_t models_in_history = 0;
  uint64_t serving_version = 0;
};

// CANCELLED when StopRuns() was called (from a signal handler, say): no further job starts, and the caller still
// stops a spawned server and removes its folder.
absl::StatusOr<DriverResult> RunAgainstServer(const Network& net, const DriverOptions& options);

// Async-signal-safe: asks running and future RunAgainstServer calls to stop after the jobs in flight.
void StopRuns();

}  // namespace accelsel::sim

#endif  // ACCELSEL_SIM_DRIVER_H_
