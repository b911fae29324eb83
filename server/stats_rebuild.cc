// The start-up rebuild of the observed statistics (see stats_rebuild.h).
#include "server/stats_rebuild.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/casts.h"
#include "absl/container/flat_hash_map.h"
#include "model/context_key.h"
#include "proto/convert.h"

namespace accelsel::server {
namespace {

// What the statistics read of one run, 72 bytes: its context, node and strategy as indices into its part's tables
// (a store holds far fewer of each than runs).
struct CompactRun {
  int64_t time_unix_ms = 0;
  model::RunMetrics metrics;
  uint32_t sequence = 0;  // in its part's reading order, i.e. run-id order: the tie-break of equal times
  uint32_t context = 0;   // in Part::contexts
  uint32_t node = 0;      // in Part::nodes
  uint32_t strategy = 0;  // in Part::strings
  model::RunStatus status = model::RunStatus::kOk;
};

// Of a run's context, what the statistics read; with its accelerator as reported, since runs of one context may
// spell it differently.
struct CompactContext {
  uint64_t context_key = 0;
  uint64_t group_key = 0;
  double price_per_hour = 0;
  uint32_t prompt_tokens = 0;
  uint32_t output_tokens = 0;
  uint32_t batch_size = 0;
  uint32_t accelerator = 0;  // in Part::strings
};

// One part of the scan. Its runs in a deque: it grows without moving what it holds (a vector's doubling held up to
// three times the runs for a moment).
struct Part {
  std::deque<CompactRun> runs;
  std::vector<std::string> strings;
  absl::flat_hash_map<std::string, uint32_t> string_index;
  std::vector<CompactContext> contexts;
  absl::flat_hash_map<std::tuple<uint64_t, uint64_t, uint32_t>, uint32_t> context_index;  // key, price bits, accel
  std::vector<uint64_t> nodes;
  absl::flat_hash_map<uint64_t, uint32_t> node_index;

  uint32_t String(const std::string& s) {
    auto [it, inserted] = string_index.try_emplace(s, static_cast<uint32_t>(strings.size()));
    if (inserted) strings.push_back(s);
    return it->second;
  }
  uint32_t Node(uint64_t hash) {
    auto [it, inserted] = node_index.try_emplace(hash, static_cast<uint32_t>(nodes.size()));
    if (inserted) nodes.push_back(hash);
    return it->second;
  }
  uint32_t Context(const model::TaskContext& c) {
    const uint32_t accelerator = String(c.hardware.accelerator);
    const uint64_t key = model::ContextKey(c);
    auto [it, inserted] = context_index.try_emplace(
        std::make_tuple(key, absl::bit_cast<uint64_t>(c.hardware.price_per_hour), accelerator),
        static_cast<uint32_t>(contexts.size()));
    if (inserted) {
      contexts.push_back(CompactContext{key, model::ContextGroupKey(c), c.hardware.price_per_hour,
                                        c.workload.prompt_tokens, c.workload.output_tokens, c.workload.batch_size,
                                        accelerator});
    }
    return it->second;
  }
};

}  // namespace

absl::StatusOr<uint64_t> RebuildObservedStats(storage::TelemetryStore& store, size_t threads,
                                              model::ObservedStats* stats) {
  const size_t parts = std::max<size_t>(1, threads);
  std::vector<Part> local(parts);
  std::atomic<bool> part_out_of_range{false};  // a part the scan should not have made, or one of 2^32 runs
  absl::Status scan = store.ScanRunsInParts(parts, nullptr, [&](size_t part, const v1::RunReport& r) {
    if (part >= local.size()) {
      part_out_of_range = true;
      return false;
    }
    if (r.time_unix_ms() < 0) return true;
    Part& p = local[part];
    if (p.runs.size() >= std::numeric_limits<uint32_t>::max()) {
      part_out_of_range = true;
      return false;
    }
    CompactRun& c = p.runs.emplace_back();
    c.time_unix_ms = r.time_unix_ms();
    c.metrics = FromProto(r.metrics());
    c.sequence = static_cast<uint32_t>(p.runs.size() - 1);
    c.context = p.Context(FromProto(r.context()));
    c.node = p.Node(model::ObservedStats::NodeHash(r.node_id()));
    c.strategy = p.String(StrategyIdOf(r));
    c.status = FromProto(r.status());
    return true;
  });
  if (!scan.ok()) return scan;
  if (part_out_of_range.load()) {
    return absl::InternalError("the store's scan made more parts than asked for, or a part of 2^32 runs");
  }
  // Within a part the runs came in run-id order, and the parts' key ranges follow each other: a sort by (time,
  // reading order) within each part, in place, then a merge that takes the earlier part on a tie, gives (time, run
  // id) order.
  for (Part& p : local) {
    std::sort(p.runs.begin(), p.runs.end(), [](const CompactRun& a, const CompactRun& b) {
      return a.time_unix_ms != b.time_unix_ms ? a.time_unix_ms < b.time_unix_ms : a.sequence < b.sequence;
    });
  }
  // Each run is dropped once added, so that what the parts hold shrinks as the statistics grow.
  uint64_t added = 0;
  for (;;) {
    size_t from = parts;
    int64_t earliest = std::numeric_limits<int64_t>::max();
    for (size_t k = 0; k < parts; ++k) {
      if (!local[k].runs.empty() && (from == parts || local[k].runs.front().time_unix_ms < earliest)) {
        from = k;
        earliest = local[k].runs.front().time_unix_ms;
      }
    }
    if (from == parts) break;
    Part& p = local[from];
    const CompactRun c = p.runs.front();
    p.runs.pop_front();
    const CompactContext& context = p.contexts[c.context];
    model::StatsInput in;
    in.context_key = context.context_key;
    in.group_key = context.group_key;
    in.node_hash = p.nodes[c.node];
    in.strategy_id = p.strings[c.strategy];
    in.accelerator = p.strings[context.accelerator];
    in.price_per_hour = context.price_per_hour;
    in.prompt_tokens = context.prompt_tokens;
    in.output_tokens = context.output_tokens;
    in.batch_size = context.batch_size;
    in.status = c.status;
    in.metrics = c.metrics;
    in.time_unix_ms = c.time_unix_ms;
    (void)stats->AddChecked(in);
    ++added;
  }
  return added;
}

}  // namespace accelsel::server
