// Observed statistics: exact-context cells with bounded reservoirs of OK samples, plus failure counts.
#include "model/observed_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"

namespace accelsel::model {
namespace {

uint64_t HashLower(std::string_view s) { return absl::HashOf(absl::AsciiStrToLower(std::string(s))); }

uint64_t Mix(uint64_t h, uint64_t v) { return absl::HashOf(h, v); }

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

float AsFloat(double v) { return static_cast<float>(v); }  // NaN stays NaN

}  // namespace

uint64_t GroupContextKey(const TaskContext& c) {
  uint64_t h = HashLower(c.model.name);
  h = Mix(h, HashLower(c.model.weight_dtype));
  h = Mix(h, HashLower(c.hardware.accelerator));
  h = Mix(h, c.hardware.count);
  return h;
}

uint64_t ExactContextKey(const TaskContext& c) {
  uint64_t h = GroupContextKey(c);
  h = Mix(h, c.workload.prompt_tokens);
  h = Mix(h, c.workload.output_tokens);
  h = Mix(h, c.workload.batch_size);
  return h;
}

void ObservedStats::Add(const RunRecord& run) {
  const uint64_t key = ExactContextKey(run.context);
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = contexts_.try_emplace(key);
  ContextEntry& entry = it->second;
  if (inserted) {
    entry.log_prompt = Log1(run.context.workload.prompt_tokens);
    entry.log_output = Log1(run.context.workload.output_tokens);
    entry.log_batch = Log1(run.context.workload.batch_size);
    groups_[GroupContextKey(run.context)].push_back(key);
  }
  Cell& cell = entry.by_strategy[run.strategy_id];
  cell.price_per_hour = run.context.hardware.price_per_hour;
  ++runs_;
  if (IsFailure(run.status)) {
    // NOT_APPLICABLE says nothing about speed but does say "do not pick this here": count it as a failure.
    ++cell.failed_runs;
    return;
  }
  ++cell.ok_runs;
  Sample s{AsFloat(run.metrics.e2e_latency_ms), AsFloat(run.metrics.ttft_ms), AsFloat(run.metrics.tpot_ms),
           AsFloat(run.metrics.throughput_tokens_per_s), AsFloat(run.metrics.peak_memory_gb),
           absl::HashOf(run.node_id)};
  if (cell.samples.size() < options_.max_samples_per_cell) {
    cell.samples.push_back(s);
    return;
  }
  // Reservoir sampling keeps a uniform sample of every OK run seen, in bounded memory.
  rng_state_ = rng_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
  const uint64_t slot = (rng_state_ >> 11) % cell.ok_runs;
  if (slot < cell.samples.size()) cell.samples[slot] = s;
}

std::optional<ObservedSummary> ObservedStats::Summarize(const Cell& cell, Objective objective,
                                                        double price_per_hour, double coverage) {
  if (cell.ok_runs == 0 && cell.failed_runs == 0) return std::nullopt;
  ObservedSummary out;
  out.ok_runs = cell.ok_runs;
  out.failed_runs = cell.failed_runs;
  std::vector<double> values, latency, memory;
  values.reserve(cell.samples.size());
  for (const Sample& s : cell.samples) {
    const double v = ObjectiveOf(s.e2e_ms, s.ttft_ms, s.tpot_ms, s.throughput, objective, price_per_hour);
    if (!std::isnan(v)) values.push_back(v);
    if (!std::isnan(s.e2e_ms)) latency.push_back(s.e2e_ms);
    if (!std::isnan(s.peak_mem_gb)) memory.push_back(s.peak_mem_gb);
  }
  std::sort(values.begin(), values.end());
  std::sort(latency.begin(), latency.end());
  std::sort(memory.begin(), memory.end());
  const double tail = (1.0 - coverage) / 2.0;
  out.median = Quantile(values, 0.5);
  out.low = Quantile(values, tail);
  out.high = Quantile(values, 1.0 - tail);
  out.median_latency_ms = Quantile(latency, 0.5);
  out.median_peak_memory_gb = Quantile(memory, 0.5);
  return out;
}

std::optional<ObservedSummary> ObservedStats::Exact(const TaskContext& c, const std::string& strategy_id,
                                                    Objective objective, double coverage) const {
  const uint64_t key = ExactContextKey(c);
  absl::ReaderMutexLock lock(&mu_);
  auto it = contexts_.find(key);
  if (it == contexts_.end()) return std::nullopt;
  auto cell = it->second.by_strategy.find(strategy_id);
  if (cell == it->second.by_strategy.end()) return std::nullopt;
  const double price = c.hardware.price_per_hour > 0 ? c.hardware.price_per_hour : cell->second.price_per_hour;
  return Summarize(cell->second, objective, price, coverage);
}

std::optional<ObservedSummary> ObservedStats::Similar(const TaskContext& c, const std::string& strategy_id,
                                                      Objective objective, double coverage) const {
  const double lp = Log1(c.workload.prompt_tokens), lo = Log1(c.workload.output_tokens),
               lb = Log1(c.workload.batch_size);
  absl::ReaderMutexLock lock(&mu_);
  auto group = groups_.find(GroupContextKey(c));
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
  return Summarize(*best, objective, price, coverage);
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
