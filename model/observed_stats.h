// ObservedStats: in-memory summary of stored telemetry, keyed by exact task context and strategy.
// Feeds the "observed" and "prior" evidence layers. Built from the store at start-up, updated on every ingest.
//
// Thread safety: every method may be called from any thread at once: many readers (SelectAccelerator, the trainer)
// and writers (the ingest writer thread, QuarantineNode). One reader-writer lock, mu_, guards all the statistics
// (cells, groups, levels, node trust, quarantine, the sampling RNG): readers share it, Add/AddChecked and
// SetQuarantined hold it exclusively, each for one report or one call; no method calls out while holding it. The
// options and the vouched-node hashes are fixed at construction and read without it. Levels() and
// DistrustedNodes() return copies, so a low-priority caller never holds mu_ while it works. Ownership: ServiceCore
// owns the instance; ModelManager borrows it (read-only) for its lifetime.
#ifndef ACCELSEL_MODEL_OBSERVED_STATS_H_
#define ACCELSEL_MODEL_OBSERVED_STATS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "model/context_key.h"
#include "model/types.h"

namespace accelsel::model {

struct ObservedSummary {
  uint64_t ok_runs = 0;
  uint64_t failed_runs = 0;
  double median = kMissing;  // of the objective over OK runs
  double low = kMissing;     // lower quantile (1 - coverage) / 2
  double high = kMissing;    // upper quantile
  double median_latency_ms = kMissing;
  double median_peak_memory_gb = kMissing;
  // Distinct nodes behind the runs (those sampled; a cell samples at most max_nodes_per_cell), and whether one of
  // them is a source the operator vouches for (ObservedStatsOptions::vouched_nodes).
  uint32_t nodes = 0;
  bool vouched = false;
};

struct ObservedStatsOptions {
  // Samples kept per (context, strategy), shared fairly among the nodes that reported there: each node keeps a
  // reservoir of at most max(min_samples_per_node, max_samples_per_cell / nodes) samples, so one node flooding a
  // cell cannot crowd the others out.
  size_t max_samples_per_cell = 256;
  size_t min_samples_per_node = 16;
  // Nodes sampled per cell; runs of further nodes are counted but not sampled (bounds memory per cell).
  size_t max_nodes_per_cell = 64;
  // A node is flagged when the robust z-score of its median log latency against the cell's median of node medians
  // exceeds this (z = (x - median) / (1.4826 * MAD), MAD floored at `min_log_spread`), judged only when at least
  // `min_peers` other nodes have reported in the cell.
  double suspect_z = 4.0;
  double min_log_spread = 0.05;
  size_t min_peers = 3;
  // Network-wide level of each strategy (a software upgrade or regression moves a strategy everywhere at once):
  // every OK report with earlier runs in its cell leaves a residual, log(value) against the cell's mean; once
  // `level_window` residuals from at least `level_min_nodes` nodes have gathered, the median of the per-node medians
  // moves the strategy's level if it is larger than `level_min_shift` (log units) and than three standard errors.
  // Samples are kept relative to the level at their time, so every cell of the strategy, visited since or not, and
  // the model's predictions follow the new level. The per-node medians keep a few flooding nodes from moving it.
  // Nodes whose runs the operator vouches for: the seed import and `accelsel import` of public tables. Evidence from a
  // single node is otherwise discounted by the selector (docs/OPERATIONS.md, "Poisoning").
  std::vector<std::string> vouched_nodes = {"llm-inference-bench"};
  // Network-wide trust of a node: each OK report with other nodes in its cell leaves a residual, log(value) against
  // the other nodes' consensus there. A node whose median over its last `trust_window` residuals (at least
  // `trust_min_residuals`) is more than `distrust_log_factor` away is distrusted: its runs stop counting in every
  // cell's estimates, in the strategy levels and in training, until its reports agree again. log(1.5): a node that
  // reports, across contexts, half as slow again as its peers (or faster) is either broken or lying; honest
  // hardware of one model varies far less. Vouched nodes are never distrusted.
  size_t trust_window = 64;
  size_t trust_min_residuals = 16;
  double distrust_log_factor = 0.405;
  // Nodes whose trust is tracked (about 300 bytes each). A node first seen beyond this is not judged: its runs count
  // as any node's, within the per-cell bounds above. Bounds memory where node ids are not bounded by a token file.
  size_t max_tracked_nodes = 1 << 16;
  size_t level_window = 32;
  size_t level_min_nodes = 3;
  double level_min_shift = 0.095;  // about 10 %
};

// What Add learned about the report it was given.
struct AddOutcome {
  // The report's node sits far from the other nodes of the same (context, strategy) cell.
  bool suspect = false;
  double z = 0;  // robust z-score of the node's median log e2e latency (0 when not judged)
};

// All that Add reads of a run, with its keys made already: what a caller that holds many runs at once keeps of each
// (the start-up rebuild, server/stats_rebuild.h) instead of the whole run. StatsInputOf(run) views `run`.
struct StatsInput {
  uint64_t context_key = 0;  // ContextKey(run.context)
  uint64_t group_key = 0;    // ContextGroupKey(run.context)
  uint64_t node_hash = 0;    // ObservedStats::NodeHash(run.node_id)
  absl::string_view strategy_id;
  absl::string_view accelerator;  // run.context.hardware.accelerator, as reported
  double price_per_hour = 0;
  uint32_t prompt_tokens = 0;
  uint32_t output_tokens = 0;
  uint32_t batch_size = 0;
  RunStatus status = RunStatus::kOk;
  RunMetrics metrics;
  int64_t time_unix_ms = 0;
};
StatsInput StatsInputOf(const RunRecord& run);

class ObservedStats {
 public:
  explicit ObservedStats(ObservedStatsOptions options = {});

  // Aggregation is robust to a few lying nodes: the median is the median of per-node medians, intervals weight
  // every node equally, and the failure rate is the mean of per-node failure rates.
  void Add(const RunRecord& run) ABSL_LOCKS_EXCLUDED(mu_) { (void)AddChecked(run); }
  AddOutcome AddChecked(const RunRecord& run) ABSL_LOCKS_EXCLUDED(mu_) { return AddChecked(StatsInputOf(run)); }
  AddOutcome AddChecked(const StatsInput& run) ABSL_LOCKS_EXCLUDED(mu_);

  // Statistics of `strategy_id` in exactly this context, or nullopt if never run there.
  std::optional<ObservedSummary> Exact(const TaskContext& c, const std::string& strategy_id, Objective objective,
                                       double coverage) const ABSL_LOCKS_EXCLUDED(mu_);
  // Statistics of `strategy_id` in the most similar observed context of the same group (nearest workload shape);
  // nullopt if none. Used only when Exact has nothing.
  std::optional<ObservedSummary> Similar(const TaskContext& c, const std::string& strategy_id, Objective objective,
                                         double coverage) const ABSL_LOCKS_EXCLUDED(mu_);

  // Whether any run on this accelerator (by name, any count) has been stored, and whether `strategy_id` has been
  // run on it (OK or failed). A strategy never tried on an accelerator the network knows well may simply not
  // apply there (an engine for other hardware); the selector says so.
  bool AcceleratorKnown(const std::string& accelerator) const ABSL_LOCKS_EXCLUDED(mu_);
  // The strategy's current level (log factor on its latencies, 0 = as first seen) and its level at a report time,
  // for the trainer, which learns every run relative to the level of its time.
  double LogLevel(const std::string& strategy_id) const ABSL_LOCKS_EXCLUDED(mu_);
  // Each strategy's level changes, (report time from which, level) ascending; a copy, so a caller (the trainer, at
  // a low priority) restates many runs without holding the statistics' lock.
  using LevelHistory = absl::flat_hash_map<std::string, std::vector<std::pair<int64_t, double>>>;
  LevelHistory Levels() const ABSL_LOCKS_EXCLUDED(mu_);
  // The level of a strategy at a report time, and `run` restated at level 0 (latencies divided, throughput
  // multiplied by exp(that level)).
  static double LogLevelAt(const LevelHistory& levels, const std::string& strategy_id, int64_t time_unix_ms);
  static void ToBaseLevel(const LevelHistory& levels, RunRecord* run);
  bool ObservedOnAccelerator(const std::string& accelerator, const std::string& strategy_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Nodes distrusted now (see ObservedStatsOptions), by NodeHash of their id; for the trainer, which leaves their
  // runs out. Copied, so a low-priority caller holds no lock while it uses them.
  absl::flat_hash_set<uint64_t> DistrustedNodes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Nodes an operator quarantined (by NodeHash): treated as distrusted whatever their reports say, until released.
  void SetQuarantined(absl::flat_hash_set<uint64_t> node_hashes) ABSL_LOCKS_EXCLUDED(mu_);
  static uint64_t NodeHash(const std::string& node_id);

  uint64_t runs() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t contexts() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Sample {
    float e2e_ms, ttft_ms, tpot_ms, throughput, peak_mem_gb;
    uint64_t node_hash;
  };
  struct NodeSamples {
    std::vector<Sample> samples;  // OK runs only: a reservoir of this node's OK runs in the cell
    uint64_t ok_runs = 0;
    uint64_t failed_runs = 0;
    double median_log_e2e = kMissing;  // over `samples`; stale while median_dirty
    bool median_dirty = false;
    double log_e2e_sum = 0;  // over every OK run of the node with a latency, at base level
    uint64_t log_e2e_count = 0;
  };
  struct Cell {
    absl::flat_hash_map<uint64_t, NodeSamples> by_node;  // node id hash -> its samples
    size_t total_samples = 0;
    uint64_t ok_runs = 0;
    uint64_t failed_runs = 0;
    double price_per_hour = 0;
  };
  struct NodeTrust {
    std::vector<float> residuals;  // ring of the last trust_window
    size_t next = 0;
    bool distrusted = false;
  };
  struct LevelResidual {
    uint64_t node_hash;
    uint64_t context_key;
    double residual;  // log latency against the cell's consensus, at the level then in force
    int64_t time_unix_ms;
    float stored_e2e;  // the sample's e2e as kept (at that level), to find and restate it; NaN until kept
  };
  struct Level {
    double log_level = 0;
    std::vector<std::pair<int64_t, double>> history;  // (report time from which, level), ascending
    std::vector<LevelResidual> window;                // since the last judgement
  };
  struct ContextEntry {
    double log_prompt = 0, log_output = 0, log_batch = 0;
    absl::flat_hash_map<std::string, Cell> by_strategy;
  };

  uint64_t NextRandomLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SampleLocked(Cell& cell, NodeSamples& node, const Sample& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  AddOutcome JudgeLocked(Cell& cell, uint64_t node_hash) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void RefreshMedianLocked(NodeSamples& node);
  // Feeds an OK run's residual against the cell's consensus (the median of its nodes' mean log latencies, one vote
  // per node, so a flood cannot move the yardstick) to its strategy's level, then adds the run to its node's mean;
  // returns the level in force.
  double TrackLevelLocked(Cell& cell, NodeSamples& node, const StatsInput& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the level by the window's median of per-node median residuals when that is large and significant.
  void JudgeLevelLocked(const std::string& strategy_id, Level& level) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double LogLevelLocked(const std::string& strategy_id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::optional<ObservedSummary> Summarize(const Cell& cell, Objective objective, double price_per_hour,
                                           double coverage, double log_level) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The cell over its trusted nodes, at base level; nullopt when it has runs only from distrusted nodes.
  std::optional<ObservedSummary> SummarizeAtBaseLevel(const Cell& cell, Objective objective, double price_per_hour,
                                                      double coverage) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const ObservedStatsOptions options_;
  absl::flat_hash_set<uint64_t> vouched_hashes_;  // of options_.vouched_nodes; filled by the constructor
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, ContextEntry> contexts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::vector<uint64_t>> groups_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Level> levels_ ABSL_GUARDED_BY(mu_);  // by strategy id
  absl::flat_hash_map<uint64_t, NodeTrust> trust_ ABSL_GUARDED_BY(mu_);  // by node hash
  absl::flat_hash_set<uint64_t> quarantined_ ABSL_GUARDED_BY(mu_);
  void JudgeTrustLocked(uint64_t node_hash, double residual) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool DistrustedLocked(uint64_t node_hash) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // accelerator (lower-cased) -> strategies run on it.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> strategies_by_accelerator_ ABSL_GUARDED_BY(mu_);
  uint64_t runs_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rng_state_ ABSL_GUARDED_BY(mu_) = 0x9e3779b97f4a7c15ULL;
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_OBSERVED_STATS_H_
