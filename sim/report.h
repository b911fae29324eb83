// Scoring and output of a simulation: regret of every policy against the table's true values (never the noisy
// ones), per window of jobs and over the summary's segments, as JSON lines or a short human table.
#ifndef ACCELSEL_SIM_REPORT_H_
#define ACCELSEL_SIM_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "sim/driver.h"
#include "sim/network.h"

namespace accelsel::sim {

// Share of the run before the summary's after_warmup segment starts.
inline constexpr double kWarmupShare = 0.2;
// Width of the "last 10 %" and "first 10 % after" segments, as a share of the jobs.
inline constexpr double kTenthShare = 0.1;

class Scorer {
 public:
  // `choices` by policy in PolicyNames() order, each with one strategy index per job (kNoChoice allowed).
  Scorer(const Network& net, std::vector<std::vector<uint32_t>> choices, const DriverResult& driver);

  // One object per `window` jobs (the last one may be shorter).
  std::vector<nlohmann::json> Windows(uint64_t window) const;
  // {"summary": {...}}: config is copied in as given; see docs/SIMULATION.md for the fields.
  nlohmann::json Summary(const nlohmann::json& config, uint64_t window) const;

  // Geometric-mean regret of `policy` over the honest jobs in [begin, end) (of `hardware` unless -1); NaN if none.
  double RegretGeomean(size_t policy, uint64_t begin, uint64_t end, int hardware = -1) const;

 private:
  // {"jobs": n, "<policy>": {"regret_geomean": x}, ...} over the honest jobs in [begin, end).
  nlohmann::json Segment(uint64_t begin, uint64_t end, int hardware = -1) const;
  size_t HonestJobs(uint64_t begin, uint64_t end, int hardware) const;
  // Share of honest jobs in [begin, end) where the policy ran the liars' favourite while it was not the best.
  double FavouriteNotBestShare(size_t policy, uint64_t begin, uint64_t end) const;
  double ExploredShare(uint64_t begin, uint64_t end) const;
  bool Honest(uint64_t job) const;

  const Network& net_;
  std::vector<std::vector<uint32_t>> choices_;
  std::vector<std::vector<double>> log_regret_;  // by policy, by job
  const DriverResult& driver_;
};

// The summary as a short table for people.
std::string HumanSummary(const nlohmann::json& summary);

}  // namespace accelsel::sim

#endif  // ACCELSEL_SIM_REPORT_H_
