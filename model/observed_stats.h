// ObservedStats: in-memory summary of stored telemetry, keyed by exact task context and strategy.
// Feeds the "observed" and "prior" evidence layers. Built from the store at start-up, updated on every ingest.
// Thread-safe: many readers (SelectAccelerator) and writers (ingest) at once.
#ifndef ACCELSEL_MODEL_OBSERVED_STATS_H_
#define ACCELSEL_MODEL_OBSERVED_STATS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "model/types.h"

namespace accelsel::model {

// Identity of a task context for the observed layer: model, weight dtype, accelerator, count and the workload
// shape (prompt, output, batch). Names are compared case-insensitively.
uint64_t ExactContextKey(const TaskContext& c);
// Coarser identity (model, dtype, accelerator, count) used to find similar tasks for the prior layer.
uint64_t GroupContextKey(const TaskContext& c);

struct ObservedSummary {
  uint64_t ok_runs = 0;
  uint64_t failed_runs = 0;
  double median = kMissing;  // of the objective over OK runs
  double low = kMissing;     // lower quantile (1 - coverage) / 2
  double high = kMissing;    // upper quantile
  double median_latency_ms = kMissing;
  double median_peak_memory_gb = kMissing;
};

struct ObservedStatsOptions {
  // Samples kept per (context, strategy); older ones are replaced at random beyond this (reservoir).
  size_t max_samples_per_cell = 256;
};

class ObservedStats {
 public:
  explicit ObservedStats(ObservedStatsOptions options = {}) : options_(options) {}

  void Add(const RunRecord& run);

  // Statistics of `strategy_id` in exactly this context, or nullopt if never run there.
  std::optional<ObservedSummary> Exact(const TaskContext& c, const std::string& strategy_id, Objective objective,
                                       double coverage) const;
  // Statistics of `strategy_id` in the most similar observed context of the same group (nearest workload shape);
  // nullopt if none. Used only when Exact has nothing.
  std::optional<ObservedSummary> Similar(const TaskContext& c, const std::string& strategy_id, Objective objective,
                                         double coverage) const;

  // Whether any run on this accelerator (by name, any count) has been stored, and whether `strategy_id` has been
  // run on it (OK or failed). A strategy never tried on an accelerator the network knows well may simply not
  // apply there (an engine for other hardware); the selector says so.
  bool AcceleratorKnown(const std::string& accelerator) const;
  bool ObservedOnAccelerator(const std::string& accelerator, const std::string& strategy_id) const;

  uint64_t runs() const;
  uint64_t contexts() const;

 private:
  struct Sample {
    float e2e_ms, ttft_ms, tpot_ms, throughput, peak_mem_gb;
    uint64_t node_hash;
  };
  struct Cell {
    std::vector<Sample> samples;  // OK runs only
    uint64_t ok_runs = 0;
    uint64_t failed_runs = 0;
    double price_per_hour = 0;
  };
  struct ContextEntry {
    double log_prompt = 0, log_output = 0, log_batch = 0;
    absl::flat_hash_map<std::string, Cell> by_strategy;
  };

  static std::optional<ObservedSummary> Summarize(const Cell& cell, Objective objective, double price_per_hour,
                                                  double coverage);

  ObservedStatsOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, ContextEntry> contexts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::vector<uint64_t>> groups_ ABSL_GUARDED_BY(mu_);
  // accelerator (lower-cased) -> strategies run on it.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> strategies_by_accelerator_ ABSL_GUARDED_BY(mu_);
  uint64_t runs_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rng_state_ ABSL_GUARDED_BY(mu_) = 0x9e3779b97f4a7c15ULL;
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_OBSERVED_STATS_H_
