// accelsel-netsim: replays a measured table as a live network of nodes against a real accelsel-server and scores
// the service's choices against baselines (docs/SIMULATION.md). The command's logic, callable in-process.
#ifndef ACCELSEL_SIM_NETSIM_H_
#define ACCELSEL_SIM_NETSIM_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/network.h"
#include "sim/table.h"

namespace accelsel::sim {

struct NetsimConfig {
  // Input: exactly one of llm_bench and csv.path.
  std::string llm_bench;
  std::string descriptors = "data/descriptors";
  CsvTableSpec csv;
  Scenario scenario;
  // Server: an address (client::ChannelTarget's form: one server, its replicas or a gRPC URI), or spawn one of
  // this build.
  std::string server;
  bool spawn_server = false;
  bool auth = false;       // --spawn-server with a generated token file: an operator token and one token per node
  std::string server_bin;  // empty = accelsel-server beside this binary
  std::string tmp_dir;     // empty = $TMPDIR or /tmp
  std::string server_retrain_interval = "10s";  // free-running mode, spawned server
  uint64_t server_retrain_min_new_runs = 1000;
  // Mode.
  bool deterministic = false;
  std::optional<uint64_t> retrain_every_jobs;  // default: 1000 when deterministic, else 0
  bool all_candidates = false;
  bool exploration = true;
  double rate = 250;  // free-running: jobs per second across the network (0 = as fast as the server answers)
  int concurrency = 16;
  int channels = 4;
  double epsilon = 0.1;
  // Output.
  bool json = false;
  uint64_t window = 1000;
  std::string plots_dir;
  std::string plot_script;  // empty = the one in the source tree this binary was built from
};

// Parses the command line (without argv[0]). Errors are one line naming the flag and the rule.
absl::StatusOr<NetsimConfig> ParseNetsimArgs(const std::vector<std::string>& args);
const char* NetsimUsage();

// Runs the simulation. Exit status: 0 done, 1 failed, 2 bad arguments, 130 interrupted (StopRuns).
int NetsimMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace accelsel::sim

#endif  // ACCELSEL_SIM_NETSIM_H_
