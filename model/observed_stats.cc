// Observed statistics: exact-context cells with bounded reservoirs of OK samples, plus failure counts.
#include "model/observed_stats.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "absl/strings/ascii.h"
#include "model/features.h"

namespace accelsel::model {
namespace {

double Log1(double v) { return std::log(std::max(v, 1.0)); }

double ObjectiveOf(float e2e, float ttft, float tpot, float thr, Objective o, double price_per_hour) {
  switch (o) {
    case Objective::kE2eLatency: return e2e;
    case Objective::kTtft: return ttft;
    case Objective::kTpot: return tpot;
    case Objective::kThroughput: return thr;
    case Objective::kCost:
      if (std::isnan(e2e) || price_per_hour <= 0) return kMissing;
      return e2e / 3.6e6 * price_per_hour;
  }
  return kMissing;
}

// Quantile of a sorted vector by linear interpolation.
double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return kMissing;
  const double pos = q * (sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - lo;
  return sorted[lo] * (1 - frac) + sorted[hi] * frac;
}

// The median (as Quantile(sorted, 0.5) gives it) in linear time; reorders `v`. On the ingest path, once per report.
double MedianInPlace(std::vector<double>& v) {
  if (v.empty()) return kMissing;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  if (v.size() % 2 == 1) return v[mid];
  const double upper = v[mid];
  return 0.5 * (*std::max_element(v.begin(), v.begin() + mid) + upper);
}

float AsFloat(double v) { return static_cast<float>(v); }  // NaN stays NaN

// The objective, e2e latency and peak memory of a node's samples, each sorted, NaNs left out.
struct SortedColumns {
  std::vector<double> values, latency, memory;
};

template <typename Samples>
SortedColumns CollectSorted(const Samples& samples, Objective objective, double price_per_hour) {
  SortedColumns out;
  for (const auto& s : samples) {
    const double v = ObjectiveOf(s.e2e_ms, s.ttft_ms, s.tpot_ms, s.throughput, objective, price_per_hour);
    if (!std::isnan(v)) out.values.push_back(v);
    if (!std::isnan(s.e2e_ms)) out.latency.push_back(s.e2e_ms);
    if (!std::isnan(s.peak_mem_gb)) out.memory.push_back(s.peak_mem_gb);
  }
  std::sort(out.values.begin(), out.values.end());
  std::sort(out.latency.begin(), out.latency.end());
  std::sort(out.memory.begin(), out.memory.end());
  return out;
}

}  // namespace

ObservedStats::ObservedStats(ObservedStatsOptions options) : options_(std::move(options)) {
  for (const std::string& id : options_.vouched_nodes) vouched_hashes_.insert(NodeHash(id));
}

StatsInput StatsInputOf(const RunRecord& run) {
  StatsInput in;
  in.context_key = ContextKey(run.context);
  in.group_key = ContextGroupKey(run.context);
  in.node_hash = ObservedStats::NodeHash(run.node_id);
  in.strategy_id = run.strategy_id;
  in.accelerator = run.context.hardware.accelerator;
  in.price_per_hour = run.context.hardware.price_per_hour;
  in.prompt_tokens = run.context.workload.prompt_tokens;
  in.output_tokens = run.context.workload.output_tokens;
  in.batch_size = run.context.workload.batch_size;
  in.status = run.status;
  in.metrics = run.metrics;
  in.time_unix_ms = run.time_unix_ms;
  return in;
}

AddOutcome ObservedStats::AddChecked(const StatsInput& run) {
  const uint64_t key = run.context_key;
  const uint64_t node_hash = run.node_hash;
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = contexts_.try_emplace(key);
  ContextEntry& entry = it->second;
  if (inserted) {
    entry.log_prompt = Log1(run.prompt_tokens);
    entry.log_output = Log1(run.output_tokens);
    entry.log_batch = Log1(run.batch_size);
    groups_[run.group_key].push_back(key);
  }
  auto cell_it = entry.by_strategy.find(run.strategy_id);
  if (cell_it == entry.by_strategy.end()) cell_it = entry.by_strategy.try_emplace(std::string(run.strategy_id)).first;
  Cell& cell = cell_it->second;
  if (cell.ok_runs + cell.failed_runs == 0) {
    strategies_by_accelerator_[absl::AsciiStrToLower(run.accelerator)].insert(std::string(run.strategy_id));
  }
  cell.price_per_hour = run.price_per_hour;
  ++runs_;
  const bool failed = IsFailure(run.status);
  // NOT_APPLICABLE says nothing about speed but does say "do not pick this here": count it as a failure.
  ++(failed ? cell.failed_runs : cell.ok_runs);
  auto node_it = cell.by_node.find(node_hash);
  if (node_it == cell.by_node.end()) {
    if (cell.by_node.size() >= options_.max_nodes_per_cell) return {};  // counted above, not sampled
    node_it = cell.by_node.try_emplace(node_hash).first;
  }
  NodeSamples& node = node_it->second;
  if (failed) {
    ++node.failed_runs;
    return {};
  }
  ++node.ok_runs;
  const double log_level = TrackLevelLocked(cell, node, run);
  // Samples are kept at base level: latencies divided by the level factor, throughput multiplied.
  const double f = std::exp(log_level);
  SampleLocked(cell, node,
               Sample{AsFloat(run.metrics.e2e_latency_ms / f), AsFloat(run.metrics.ttft_ms / f),
                      AsFloat(run.metrics.tpot_ms / f), AsFloat(run.metrics.throughput_tokens_per_s * f),
                      AsFloat(run.metrics.peak_memory_gb), node_hash});
  return JudgeLocked(cell, node_hash);
}

double ObservedStats::TrackLevelLocked(Cell& cell, NodeSamples& node, const StatsInput& run) {
  const uint64_t context_key = run.context_key;
  const uint64_t node_hash = run.node_hash;
  auto level_it = levels_.find(run.strategy_id);
  if (level_it == levels_.end()) level_it = levels_.try_emplace(std::string(run.strategy_id)).first;
  Level& level = level_it->second;
  const double e2e = run.metrics.e2e_latency_ms;
  if (!(e2e > 0)) return level.log_level;
  const double base_log = std::log(e2e) - level.log_level;
  std::vector<double> node_means, other_means;
  node_means.reserve(cell.by_node.size());
  other_means.reserve(cell.by_node.size());
  for (const auto& [hash, n] : cell.by_node) {
    if (n.log_e2e_count == 0 || DistrustedLocked(hash)) continue;
    node_means.push_back(n.log_e2e_sum / static_cast<double>(n.log_e2e_count));
    if (hash != node_hash) other_means.push_back(node_means.back());
  }
  if (!other_means.empty() && !vouched_hashes_.contains(node_hash)) {
    JudgeTrustLocked(node_hash, base_log - MedianInPlace(other_means));
  }
  if (!node_means.empty() && !DistrustedLocked(node_hash)) {
    const double residual = base_log - MedianInPlace(node_means);
    level.window.push_back(LevelResidual{node_hash, context_key, residual, run.time_unix_ms, kMissing});
    if (level.window.size() >= options_.level_window) JudgeLevelLocked(level_it->first, level);
  }
  // At the level now in force, which the judgement above may just have moved.
  node.log_e2e_sum += std::log(e2e) - level.log_level;
  ++node.log_e2e_count;
  if (!level.window.empty() && level.window.back().context_key == context_key &&
      level.window.back().node_hash == node_hash && std::isnan(level.window.back().stored_e2e)) {
    level.window.back().stored_e2e = AsFloat(e2e / std::exp(level.log_level));  // as SampleLocked will keep it
  }
  return level.log_level;
}

void ObservedStats::JudgeLevelLocked(const std::string& strategy_id, Level& level) {
  std::vector<LevelResidual> window;
  window.swap(level.window);
  absl::flat_hash_map<uint64_t, std::vector<double>> by_node;
  for (const LevelResidual& e : window) by_node[e.node_hash].push_back(e.residual);
  if (by_node.size() < options_.level_min_nodes) return;
  std::vector<double> medians;
  medians.reserve(by_node.size());
  for (auto& [node, rs] : by_node) {
    std::sort(rs.begin(), rs.end());
    medians.push_back(Quantile(rs, 0.5));
  }
  std::sort(medians.begin(), medians.end());
  const double shift = Quantile(medians, 0.5);
  std::vector<double> dev;
  dev.reserve(medians.size());
  for (double m : medians) dev.push_back(std::abs(m - shift));
  std::sort(dev.begin(), dev.end());
  // Standard error of a median of n values: about 1.25 sd / sqrt(n), with the sd from the MAD.
  const double se = 1.25 * 1.4826 * Quantile(dev, 0.5) / std::sqrt(static_cast<double>(medians.size()));
  if (std::abs(shift) <= options_.level_min_shift || std::abs(shift) <= 3 * se) return;
  level.log_level += shift;
  // The window's runs that already show the new level were kept at the old one: restate them, so the cells they
  // went to do not hold them as outliers against the level now in force. The change dates from the first of them.
  int64_t since = window.back().time_unix_ms;
  const double f = std::exp(shift);
  for (const LevelResidual& e : window) {
    if (!(std::abs(e.residual - shift) < std::abs(e.residual))) continue;
    since = std::min(since, e.time_unix_ms);
    if (std::isnan(e.stored_e2e)) continue;  // the run that completed the window: not kept yet
    auto ctx = contexts_.find(e.context_key);
    if (ctx == contexts_.end()) continue;
    auto cell = ctx->second.by_strategy.find(strategy_id);
    if (cell == ctx->second.by_strategy.end()) continue;
    auto node = cell->second.by_node.find(e.node_hash);
    if (node == cell->second.by_node.end()) continue;
    node->second.log_e2e_sum -= shift;
    for (Sample& x : node->second.samples) {
      if (x.e2e_ms != e.stored_e2e) continue;
      x.e2e_ms = AsFloat(x.e2e_ms / f);
      x.ttft_ms = AsFloat(x.ttft_ms / f);
      x.tpot_ms = AsFloat(x.tpot_ms / f);
      x.throughput = AsFloat(x.throughput * f);
      node->second.median_dirty = true;
      break;
    }
  }
  if (!level.history.empty() && since < level.history.back().first) since = level.history.back().first;
  level.history.emplace_back(since, level.log_level);
}

void ObservedStats::JudgeTrustLocked(uint64_t node_hash, double residual) {
  auto it = trust_.find(node_hash);
  if (it == trust_.end()) {
    if (trust_.size() >= options_.max_tracked_nodes) return;
    it = trust_.try_emplace(node_hash).first;
  }
  NodeTrust& t = it->second;
  if (t.residuals.size() < options_.trust_window) {
    t.residuals.push_back(static_cast<float>(residual));
  } else {
    t.residuals[t.next] = static_cast<float>(residual);
    t.next = (t.next + 1) % t.residuals.size();
  }
  if (t.residuals.size() < options_.trust_min_residuals) return;
  std::vector<double> values(t.residuals.begin(), t.residuals.end());
  t.distrusted = std::abs(MedianInPlace(values)) > options_.distrust_log_factor;
}

bool ObservedStats::DistrustedLocked(uint64_t node_hash) const {
  if (quarantined_.contains(node_hash)) return true;
  auto it = trust_.find(node_hash);
  return it != trust_.end() && it->second.distrusted;
}

absl::flat_hash_set<uint64_t> ObservedStats::DistrustedNodes() const {
  absl::ReaderMutexLock lock(&mu_);
  absl::flat_hash_set<uint64_t> out;
  for (const auto& [hash, t] : trust_) {
    if (t.distrusted) out.insert(hash);
  }
  out.insert(quarantined_.begin(), quarantined_.end());
  return out;
}

void ObservedStats::SetQuarantined(absl::flat_hash_set<uint64_t> node_hashes) {
  absl::MutexLock lock(&mu_);
  quarantined_ = std::move(node_hashes);
}

uint64_t ObservedStats::NodeHash(const std::string& node_id) { return StableHash(node_id); }

double ObservedStats::LogLevelLocked(const std::string& strategy_id) const {
  auto it = levels_.find(strategy_id);
  return it == levels_.end() ? 0.0 : it->second.log_level;
}

double ObservedStats::LogLevel(const std::string& strategy_id) const {
  absl::ReaderMutexLock lock(&mu_);
  return LogLevelLocked(strategy_id);
}

ObservedStats::LevelHistory ObservedStats::Levels() const {
  absl::ReaderMutexLock lock(&mu_);
  LevelHistory out;
  for (const auto& [id, level] : levels_) {
    if (!level.history.empty()) out.emplace(id, level.history);
  }
  return out;
}

double ObservedStats::LogLevelAt(const LevelHistory& levels, const std::string& strategy_id, int64_t time_unix_ms) {
  auto it = levels.find(strategy_id);
  if (it == levels.end()) return 0.0;
  const auto& h = it->second;
  // The last change at or before the report's time.
  auto after = std::upper_bound(h.begin(), h.end(), time_unix_ms,
                                [](int64_t t, const std::pair<int64_t, double>& e) { return t < e.first; });
  return after == h.begin() ? 0.0 : std::prev(after)->second;
}

void ObservedStats::ToBaseLevel(const LevelHistory& levels, RunRecord* run) {
  const double l = LogLevelAt(levels, run->strategy_id, run->time_unix_ms);
  if (l == 0) return;
  const double f = std::exp(l);
  auto& m = run->metrics;
  for (double* v : {&m.e2e_latency_ms, &m.ttft_ms, &m.tpot_ms}) *v /= f;  // NaN stays NaN
  m.throughput_tokens_per_s *= f;
}

uint64_t ObservedStats::NextRandomLocked() {
  rng_state_ = rng_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
  return rng_state_ >> 11;
}

void ObservedStats::SampleLocked(Cell& cell, NodeSamples& node, const Sample& s) {
  const size_t fair_share =
      std::max(options_.min_samples_per_node, options_.max_samples_per_cell / std::max<size_t>(1, cell.by_node.size()));
  if (node.samples.size() < fair_share) {
    if (cell.total_samples >= options_.max_samples_per_cell) {
      // The cell is full: make room by dropping a random sample of the node holding the most.
      NodeSamples* largest = nullptr;
      for (auto& [hash, other] : cell.by_node) {
        if (largest == nullptr || other.samples.size() > largest->samples.size()) largest = &other;
      }
      if (largest != nullptr && largest != &node && largest->samples.size() > fair_share) {
        const size_t victim = NextRandomLocked() % largest->samples.size();
        largest->samples[victim] = largest->samples.back();
        largest->samples.pop_back();
        --cell.total_samples;
      }
    }
    node.samples.push_back(s);
    ++cell.total_samples;
  } else {
    // Reservoir sampling within the node keeps a uniform sample of its OK runs, in bounded memory.
    const uint64_t slot = NextRandomLocked() % node.ok_runs;
    if (slot < node.samples.size()) node.samples[slot] = s;
  }
  node.median_dirty = true;  // recomputed when a judgement needs it (only cells with several nodes)
}

void ObservedStats::RefreshMedianLocked(NodeSamples& node) {
  if (!node.median_dirty) return;
  node.median_dirty = false;
  std::vector<double> logs;
  logs.reserve(node.samples.size());
  for (const Sample& x : node.samples) {
    if (!std::isnan(x.e2e_ms) && x.e2e_ms > 0) logs.push_back(std::log(x.e2e_ms));
  }
  std::sort(logs.begin(), logs.end());
  node.median_log_e2e = Quantile(logs, 0.5);
}

AddOutcome ObservedStats::JudgeLocked(Cell& cell, uint64_t node_hash) {
  if (cell.by_node.size() <= options_.min_peers) return {};  // too few peers to judge: skip the medians
  NodeSamples& me = cell.by_node.at(node_hash);
  RefreshMedianLocked(me);
  const double mine = me.median_log_e2e;
  if (std::isnan(mine)) return {};
  std::vector<double> others;
  for (auto& [hash, n] : cell.by_node) {
    if (hash == node_hash) continue;
    RefreshMedianLocked(n);
    if (!std::isnan(n.median_log_e2e)) others.push_back(n.median_log_e2e);
  }
  if (others.size() < options_.min_peers) return {};
  // The consensus is taken without the judged node, so a flood from it cannot move the yardstick.
  std::sort(others.begin(), others.end());
  const double center = Quantile(others, 0.5);
  std::vector<double> dev;
  dev.reserve(others.size());
  for (double v : others) dev.push_back(std::abs(v - center));
  std::sort(dev.begin(), dev.end());
  const double spread = std::max(1.4826 * Quantile(dev, 0.5), options_.min_log_spread);
  AddOutcome out;
  out.z = (mine - center) / spread;
  out.suspect = std::abs(out.z) > options_.suspect_z;
  return out;
}

namespace {

// Quantile over samples where each node carries the same total weight (1 / its sample count per sample).
double NodeWeightedQuantile(std::vector<std::pair<double, double>> value_weight, double q) {
  if (value_weight.empty()) return kMissing;
  std::sort(value_weight.begin(), value_weight.end());
  double total = 0;
  for (const auto& vw : value_weight) total += vw.second;
  const double target = q * total;
  double acc = 0;
  for (const auto& [v, w] : value_weight) {
    acc += w;
    if (acc >= target) return v;
  }
  return value_weight.back().first;
}

}  // namespace

std::optional<ObservedSummary> ObservedStats::Summarize(const Cell& cell, Objective objective, double price_per_hour,
                                                        double coverage, double log_level) const {
  if (cell.ok_runs == 0 && cell.failed_runs == 0) return std::nullopt;
  std::optional<ObservedSummary> out = SummarizeAtBaseLevel(cell, objective, price_per_hour, coverage);
  if (out.has_value() && log_level != 0) {
    const double f = std::exp(IsMaximized(objective) ? -log_level : log_level);
    for (double* v : {&out->median, &out->low, &out->high}) *v *= f;
    out->median_latency_ms *= std::exp(log_level);
  }
  return out;
}

std::optional<ObservedSummary> ObservedStats::SummarizeAtBaseLevel(const Cell& cell, Objective objective,
                                                                   double price_per_hour, double coverage) const {
  ObservedSummary out;
  bool any_distrusted = false;
  // Failure rate: the mean of per-node rates, so a node reporting a flood of failures counts once.
  double rate_sum = 0;
  int rate_nodes = 0;
  uint64_t total = cell.ok_runs + cell.failed_runs;
  std::vector<const NodeSamples*> nodes;  // the trusted ones
  nodes.reserve(cell.by_node.size());
  for (const auto& [hash, n] : cell.by_node) {
    if (DistrustedLocked(hash)) {
      total -= n.ok_runs + n.failed_runs;
      any_distrusted = any_distrusted || n.ok_runs + n.failed_runs > 0;
      continue;
    }
    nodes.push_back(&n);
    if (n.ok_runs + n.failed_runs == 0) continue;
    rate_sum += static_cast<double>(n.failed_runs) / static_cast<double>(n.ok_runs + n.failed_runs);
    ++rate_nodes;
    out.vouched = out.vouched || vouched_hashes_.contains(hash);
  }
  if (any_distrusted && rate_nodes == 0) return std::nullopt;  // nothing here anyone trusts
  out.nodes = static_cast<uint32_t>(rate_nodes);
  if (total == 0) return out;
  const double rate =
      rate_nodes > 0 ? rate_sum / rate_nodes : static_cast<double>(cell.failed_runs) / static_cast<double>(total);
  out.failed_runs = static_cast<uint64_t>(std::llround(rate * static_cast<double>(total)));
  out.ok_runs = total - out.failed_runs;
  if (cell.ok_runs > 0 && out.ok_runs == 0 && rate < 1) out.ok_runs = 1;  // some node did run it

  const double tail = (1.0 - coverage) / 2.0;
  if (nodes.size() <= 1) {
    // One node: plain quantiles of its samples.
    SortedColumns cols;
    for (const NodeSamples* n : nodes) cols = CollectSorted(n->samples, objective, price_per_hour);
    out.median = Quantile(cols.values, 0.5);
    out.low = Quantile(cols.values, tail);
    out.high = Quantile(cols.values, 1.0 - tail);
    out.median_latency_ms = Quantile(cols.latency, 0.5);
    out.median_peak_memory_gb = Quantile(cols.memory, 0.5);
    return out;
  }
  // Several nodes: medians are medians of per-node medians; the interval weights every node equally.
  std::vector<double> value_medians, latency_medians, memory_medians;
  std::vector<std::pair<double, double>> weighted;
  for (const NodeSamples* n : nodes) {
    const SortedColumns cols = CollectSorted(n->samples, objective, price_per_hour);
    for (double v : cols.values) weighted.emplace_back(v, 1.0 / static_cast<double>(cols.values.size()));
    if (!cols.values.empty()) value_medians.push_back(Quantile(cols.values, 0.5));
    if (!cols.latency.empty()) latency_medians.push_back(Quantile(cols.latency, 0.5));
    if (!cols.memory.empty()) memory_medians.push_back(Quantile(cols.memory, 0.5));
  }
  std::sort(value_medians.begin(), value_medians.end());
  std::sort(latency_medians.begin(), latency_medians.end());
  std::sort(memory_medians.begin(), memory_medians.end());
  out.median = Quantile(value_medians, 0.5);
  out.low = NodeWeightedQuantile(weighted, tail);
  out.high = NodeWeightedQuantile(weighted, 1.0 - tail);
  out.median_latency_ms = Quantile(latency_medians, 0.5);
  out.median_peak_memory_gb = Quantile(memory_medians, 0.5);
  return out;
}

std::optional<ObservedSummary> ObservedStats::Exact(const TaskContext& c, const std::string& strategy_id,
                                                    Objective objective, double coverage) const {
  const uint64_t key = ContextKey(c);
  absl::ReaderMutexLock lock(&mu_);
  auto it = contexts_.find(key);
  if (it == contexts_.end()) return std::nullopt;
  auto cell = it->second.by_strategy.find(strategy_id);
  if (cell == it->second.by_strategy.end()) return std::nullopt;
  const double price = c.hardware.price_per_hour > 0 ? c.hardware.price_per_hour : cell->second.price_per_hour;
  return Summarize(cell->second, objective, price, coverage, LogLevelLocked(strategy_id));
}

std::optional<ObservedSummary> ObservedStats::Similar(const TaskContext& c, const std::string& strategy_id,
                                                      Objective objective, double coverage) const {
  const double lp = Log1(c.workload.prompt_tokens), lo = Log1(c.workload.output_tokens),
               lb = Log1(c.workload.batch_size);
  absl::ReaderMutexLock lock(&mu_);
  auto group = groups_.find(ContextGroupKey(c));
  if (group == groups_.end()) return std::nullopt;
  const Cell* best = nullptr;
  double best_distance = 0;
  for (uint64_t key : group->second) {
    const ContextEntry& e = contexts_.at(key);
    auto cell = e.by_strategy.find(strategy_id);
    if (cell == e.by_strategy.end() || cell->second.ok_runs == 0) continue;
    const double d = std::abs(e.log_prompt - lp) + std::abs(e.log_output - lo) + std::abs(e.log_batch - lb);
    if (best == nullptr || d < best_distance) {
      best = &cell->second;
      best_distance = d;
    }
  }
  if (best == nullptr) return std::nullopt;
  const double price = c.hardware.price_per_hour > 0 ? c.hardware.price_per_hour : best->price_per_hour;
  return Summarize(*best, objective, price, coverage, LogLevelLocked(strategy_id));
}

bool ObservedStats::AcceleratorKnown(const std::string& accelerator) const {
  absl::ReaderMutexLock lock(&mu_);
  return strategies_by_accelerator_.contains(absl::AsciiStrToLower(accelerator));
}

bool ObservedStats::ObservedOnAccelerator(const std::string& accelerator, const std::string& strategy_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = strategies_by_accelerator_.find(absl::AsciiStrToLower(accelerator));
  return it != strategies_by_accelerator_.end() && it->second.contains(strategy_id);
}

uint64_t ObservedStats::runs() const {
  absl::ReaderMutexLock lock(&mu_);
  return runs_;
}

uint64_t ObservedStats::contexts() const {
  absl::ReaderMutexLock lock(&mu_);
  return contexts_.size();
}

}  // namespace accelsel::model
