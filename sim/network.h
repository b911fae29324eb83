// The simulated world of a run: which nodes exist when, which job each node runs, what a strategy truly costs
// at that point (drift) and what a node measures and reports (noise, lies). Everything here is a pure function
// of the table, the scenario and the seed, so the service and every baseline face the same job sequence.
#ifndef ACCELSEL_SIM_NETWORK_H_
#define ACCELSEL_SIM_NETWORK_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/table.h"

namespace accelsel::sim {

// The scenario flags (docs/SIMULATION.md).
struct Scenario {
  uint64_t jobs = 20000;
  uint32_t nodes = 1000;
  uint64_t seed = 1;
  double noise = 0.05;       // sigma of the multiplicative log-normal noise
  double warm_fraction = 0;  // share of the table's (task, strategy) cells reported before the first job
  // --late-hardware NAME@FRACTION: nodes of that hardware join after that share of the jobs.
  std::string late_hardware;
  double late_fraction = 0;
  // --liars K --liar-factor F: K nodes (among the N) report every strategy but one F times worse, and run jobs
  // at 10 times the rate of an honest node.
  uint32_t liars = 0;
  double liar_factor = 3;
  // --drift STRATEGY@FRACTION×FACTOR: from that share of the jobs on, the strategy is FACTOR times worse everywhere.
  std::string drift_strategy;
  double drift_fraction = 0;
  double drift_factor = 1;
  // --churn: at every twentieth of the run a tenth of the honest nodes leave and as many new ones join.
  bool churn = false;
};

inline constexpr double kLiarRateMultiple = 10;
inline constexpr int kChurnEvents = 20;
inline constexpr double kChurnShare = 0.1;

struct SimNode {
  std::string id;  // "sim-node-0001"
  uint32_t hardware = 0;
  bool liar = false;
  uint64_t joins_at = 0;            // first job index it may run
  uint64_t leaves_at = UINT64_MAX;  // first job index it no longer runs
};

struct Job {
  uint32_t node = 0;
  uint32_t task = 0;
};

// A warm-start report: the cell (task, strategy) and the node that reports it.
struct WarmReport {
  uint32_t task = 0;
  uint32_t strategy = 0;
  uint32_t node = 0;
};

class Network {
 public:
  // Checks the scenario against the table (hardware and strategy names, counts). Builds nodes and jobs.
  static absl::StatusOr<Network> Build(const SimTable& table, const Scenario& scenario);

  const SimTable& table() const { return *table_; }
  const Scenario& scenario() const { return scenario_; }
  const std::vector<SimNode>& nodes() const { return nodes_; }
  const std::vector<Job>& jobs() const { return jobs_; }
  const std::vector<WarmReport>& warm_reports() const { return warm_; }

  // Job index where late hardware joins / drift starts (jobs() size when not in the scenario).
  uint64_t late_job() const { return late_job_; }
  int late_hardware() const { return late_hardware_; }  // -1 = none
  uint64_t drift_job() const { return drift_job_; }
  int drift_strategy() const { return drift_strategy_; }  // -1 = none
  int liar_favourite() const { return liar_favourite_; }  // the strategy liars report honestly; -1 = no liars
  uint32_t churned_nodes() const { return churned_; }

  // The strategy's true value for the task at job `job` (drift included). NaN when not measured there.
  double TrueValue(uint32_t task, uint32_t strategy, uint64_t job) const;
  // The task's best true value at job `job` and the strategy that has it among `candidates` present there.
  double BestValue(uint32_t task, uint64_t job) const;
  // value / best (minimise) or best / value (maximise), >= 1. A strategy not measured for the task counts as the
  // task's worst measured one: the node cannot run it and falls back after a wasted attempt. So does an index
  // past the strategies (no choice: the select failed).
  double Regret(uint32_t task, uint32_t strategy, uint64_t job) const;
  // What a node measures: the true value times exp(N(0, noise)), the same draw for the same (job, strategy)
  // whoever chooses it. Liars' reports are then made `liar_factor` worse unless the strategy is their favourite.
  double Measured(uint64_t job, uint32_t task, uint32_t strategy) const;
  double Reported(uint64_t job, uint32_t task, uint32_t strategy) const;
  // Same for warm report `i` (its own noise stream).
  double WarmMeasured(size_t i) const;
  // A strategy index is "better" than another for this table's direction.
  bool Better(double a, double b) const { return table_->maximize ? a > b : a < b; }

 private:
  Network(const SimTable& table, const Scenario& scenario) : table_(&table), scenario_(scenario) {}
  double Noise(uint64_t stream, uint64_t a, uint64_t b) const;

  const SimTable* table_;
  Scenario scenario_;
  std::vector<SimNode> nodes_;
  std::vector<Job> jobs_;
  std::vector<WarmReport> warm_;
  std::vector<double> worst_;  // per task
  uint64_t late_job_ = 0;
  int late_hardware_ = -1;
  uint64_t drift_job_ = 0;
  int drift_strategy_ = -1;
  int liar_favourite_ = -1;
  uint32_t churned_ = 0;
};

// A generator for one independent decision of the simulation (`stream` names it), from the run's seed.
std::mt19937_64 StreamRng(uint64_t seed, uint64_t stream);

// "a@0.5" -> {"a", 0.5}; "vllm@0.5x3" / "vllm@0.5×3" -> {"vllm", 0.5, 3}. The flag name goes into errors.
absl::Status ParseLateHardware(const std::string& text, Scenario* scenario);
absl::Status ParseDrift(const std::string& text, Scenario* scenario);

}  // namespace accelsel::sim

#endif  // ACCELSEL_SIM_NETWORK_H_
