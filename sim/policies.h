// The baselines a simulation scores beside accelsel, on the same job sequence and without the server: oracle,
// single best strategy (sbs), random, a fixed default and an epsilon-greedy table lookup. Those that learn see the
// values the network reports (noise and lies included), never the table's true values.
#ifndef ACCELSEL_SIM_POLICIES_H_
#define ACCELSEL_SIM_POLICIES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sim/network.h"

namespace accelsel::sim {

struct BaselineOptions {
  bool all_candidates = false;  // random and epsilon_greedy choose among every strategy, not the task's own
  double epsilon = 0.1;
};

// Policy names in output order; "accelsel" is the service.
inline const std::vector<std::string>& PolicyNames() {
  static const std::vector<std::string> kNames = {"accelsel", "oracle", "sbs", "epsilon_greedy", "default", "random"};
  return kNames;
}

// Per policy (same order as PolicyNames(), "accelsel" left empty), the strategy each job's node would run.
//  oracle: the best true value at that job (drift included).
//  sbs: the strategy with the best mean log ratio to each earlier job's best reported value, over every strategy
//    measured for those jobs' tasks (full information, as an offline single best is fitted on a whole table);
//    before anything is known, the default.
//  default: the strategy present in most tasks (SimTable::MostCommonStrategy), else the next most common one
//    present for the task.
//  epsilon_greedy: per task, with probability epsilon a uniformly random candidate, else the candidate with the
//    best mean log reported value among those it has tried there; untried ones are unknown (not preferred).
//  random: a uniformly random candidate.
// Warm reports are seen by sbs and epsilon_greedy before the first job.
std::vector<std::vector<uint32_t>> RunBaselines(const Network& net, const BaselineOptions& options);

}  // namespace accelsel::sim

#endif  // ACCELSEL_SIM_POLICIES_H_
