// Ranking of candidate strategies for one task context: evidence layers (observed -> model -> prior -> unknown),
// objective, constraints, predicted failure and exploration. Pure C++; the server converts to and from the wire.
#ifndef ACCELSEL_MODEL_SELECTOR_H_
#define ACCELSEL_MODEL_SELECTOR_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/observed_stats.h"
#include "model/predictor.h"
#include "model/types.h"

namespace accelsel::model {

struct Constraints {
  double max_latency_ms = kMissing;
  double max_cost = kMissing;
  double max_memory_gb = kMissing;
  double max_failure_probability = 0.5;
  bool exclude_lossy = false;  // a lossy strategy (Strategy::lossy) then violates "exclude_lossy"
};

struct SelectQuery {
  const TaskContext* context = nullptr;
  std::vector<const Strategy*> candidates;  // already resolved against the catalogue
  Objective objective = Objective::kE2eLatency;
  Constraints constraints;
  uint32_t top_k = 0;  // 0 = all
  bool allow_exploration = false;
};

struct Recommendation {
  const Strategy* strategy = nullptr;
  uint32_t rank = 0;
  double expected_value = 0;  // objective units
  double interval_low = 0;
  double interval_high = 0;
  double expected_latency_ms = 0;
  double expected_cost = 0;
  bool meets_constraints = true;
  std::vector<std::string> violated;
  double failure_probability = 0;
  uint64_t evidence_count = 0;
  uint32_t evidence_nodes = 0;  // distinct nodes behind an observed or prior estimate
  EvidenceLayer layer = EvidenceLayer::kUnknown;
  bool explored = false;
  double selection_probability = 0;
};

struct SelectorOptions {
  // Probability of placing a non-top strategy first when the caller allows exploration. 0 disables.
  double exploration_rate = 0.05;
  // Nominal coverage of reported intervals.
  double interval_coverage = 0.8;
};

class Selector {
 public:
  explicit Selector(SelectorOptions options) : options_(options) {}

  // `predictor` may be null (statistics only). `rng` drives exploration only.
  std::vector<Recommendation> Select(const SelectQuery& query, const ObservedStats& stats, const Predictor* predictor,
                                     std::mt19937_64& rng) const;

  const SelectorOptions& options() const { return options_; }

 private:
  SelectorOptions options_;
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_SELECTOR_H_
