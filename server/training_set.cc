// The trainer's two-pass read of the store (see training_set.h).
#include "server/training_set.h"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "model/context_key.h"
#include "model/robust.h"
#include "model/row_cap.h"
#include "proto/convert.h"
#include "util/hash.h"

namespace accelsel::server {
namespace {

// One side of the split after the first pass: its runs' keys, in scan order.
struct SideKeys {
  std::vector<model::RowCapKey> cap;
  std::vector<uint64_t> draw;  // model::ThinningDraw of each run's id
};

// A run the first pass chose, by the hash of its id: what the second pass checks before it takes a run of that hash,
// so that a run whose id hashes the same as a chosen one's is not taken with it (unless it matches these too).
struct Chosen {
  int64_t time_unix_ms = 0;
  uint64_t node = 0;
  bool holdout = false;
};

// Thins `side` by node share: its cap keys keep the runs the thinning keeps (its draws are consumed); adds the number
// left out to counts->thinned.
void Thin(SideKeys* side, TrainingSet* counts) {
  std::vector<bool> keep;
  {
    std::vector<model::NodeShareKey> share;
    share.reserve(side->cap.size());
    for (size_t i = 0; i < side->cap.size(); ++i) {
      share.push_back(model::NodeShareKey{side->cap[i].context, side->cap[i].node, side->draw[i]});
    }
    side->draw = {};
    keep = model::KeepByNodeShare(share);
  }
  size_t out = 0;
  for (size_t i = 0; i < side->cap.size(); ++i) {
    if (keep[i]) side->cap[out++] = side->cap[i];
  }
  counts->thinned += side->cap.size() - out;
  side->cap.resize(out);
}

// Caps the thinned keys of a side at `max_rows` (0 = none) and adds the runs kept to `chosen`. Consumes the keys;
// returns how many it kept. After the thinning: the cap keeps each cell's nodes in turn, so it does not undo it.
size_t Cap(std::vector<model::RowCapKey> keys, size_t max_rows, bool holdout, TrainingSet* counts,
           absl::flat_hash_map<uint64_t, Chosen>* chosen) {
  const std::vector<bool> keep = model::ChooseCappedRows(keys, max_rows);
  size_t kept = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keep[i]) {
      chosen->emplace(keys[i].run, Chosen{keys[i].time_unix_ms, keys[i].node, holdout});
      ++kept;
    }
  }
  counts->capped += keys.size() - kept;
  return kept;
}

// A part of a scan keeps what it found on its own thread and hands it over to the shared lists under the lock once
// it holds this many keys (first pass) or runs (second pass), not once per run.
constexpr size_t kHandOverKeys = 1024;
constexpr size_t kHandOverRuns = 64;

// Moves the elements of `from` to the end of `to` and empties `from` (keeping its buffer for the next ones).
template <typename T>
void MoveAppend(std::vector<T>* from, std::vector<T>* to) {
  to->insert(to->end(), std::make_move_iterator(from->begin()), std::make_move_iterator(from->end()));
  from->clear();
}

// Sorts `runs` by (time, run id), the time index's order, moving each record once: a record is large (a context of
// strings and maps), and sorting the records themselves moved each about log2(n) times, a fifth of the whole read
// at a million runs. The order is sorted on (time, index) and then applied in place, cycle by cycle.
void SortByTimeAndId(std::vector<model::RunRecord>* runs) {
  std::vector<model::RunRecord>& r = *runs;
  std::vector<std::pair<int64_t, size_t>> order(r.size());
  for (size_t i = 0; i < r.size(); ++i) order[i] = {r[i].time_unix_ms, i};
  std::sort(order.begin(), order.end(), [&r](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : r[a.second].run_id < r[b.second].run_id;
  });
  // Position i takes the record now at order[i].second; a position already filled points at itself.
  for (size_t i = 0; i < r.size(); ++i) {
    if (order[i].second == i) continue;
    model::RunRecord held = std::move(r[i]);
    size_t to = i;
    while (order[to].second != i) {
      const size_t from = order[to].second;
      r[to] = std::move(r[from]);
      order[to].second = to;
      to = from;
    }
    r[to] = std::move(held);
    order[to].second = to;
  }
}

void PutLittleEndian64(uint64_t value, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t ReadLittleEndian64(std::string_view bytes, size_t at) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[at + static_cast<size_t>(i)]);
  return value;
}

constexpr size_t kSummaryBytes = 32;

std::string SummaryOf(const model::TaskContext& context, std::string_view strategy_id, std::string_view node_id) {
  char out[kSummaryBytes];
  PutLittleEndian64(model::ContextKey(context), out);
  PutLittleEndian64(model::HoldoutContextKey(context), out + 8);
  PutLittleEndian64(util::StableHash(strategy_id), out + 16);
  PutLittleEndian64(util::StableHash(node_id), out + 24);
  return std::string(out, sizeof out);
}

}  // namespace

std::string TrainingSummaryOf(const v1::RunReport& run) {
  return SummaryOf(FromProto(run.context()), StrategyIdOf(run), run.node_id());
}

std::string TrainingSummaryOfRecord(const model::RunRecord& run) {
  return SummaryOf(run.context, run.strategy_id, run.node_id);
}

void UseTrainingSummaries(storage::StoreOptions* options) {
  options->run_summary = &TrainingSummaryOf;
  options->run_summary_format = kTrainingSummaryFormat;
}

std::pair<size_t, size_t> SplitRowCap(size_t train, size_t held_out, size_t max_rows) {
  const size_t all = train + held_out;
  if (max_rows == 0 || all <= max_rows) return {0, 0};
  size_t held_out_cap = static_cast<size_t>(
      static_cast<long double>(max_rows) * static_cast<long double>(held_out) / static_cast<long double>(all) + 0.5L);
  held_out_cap = std::clamp<size_t>(held_out_cap, held_out > 0 ? 1 : 0, max_rows);
  const size_t train_cap = std::max<size_t>(max_rows - held_out_cap, train > 0 ? 1 : 0);
  return {train_cap, held_out_cap};
}

absl::StatusOr<TrainingSet> ReadTrainingSet(storage::TelemetryStore& store, const TrainingSetOptions& options) {
  const size_t parts = std::max<size_t>(1, options.scan_threads);
  TrainingSet set;
  absl::Mutex mu;                                // each pass's hand-overs from its parts into the shared lists
  absl::flat_hash_map<uint64_t, Chosen> chosen;  // by util::StableHash(run_id); only read while the second pass runs
  {
    SideKeys train, holdout;
    struct PartKeys {
      SideKeys train, holdout;
      size_t scanned = 0, distrusted = 0;
    };
    std::vector<PartKeys> local(parts);
    const auto hand_over = [&](PartKeys& p) {
      absl::MutexLock lock(&mu);
      MoveAppend(&p.train.cap, &train.cap);
      MoveAppend(&p.train.draw, &train.draw);
      MoveAppend(&p.holdout.cap, &holdout.cap);
      MoveAppend(&p.holdout.draw, &holdout.draw);
    };
    std::atomic<bool> malformed{false};
    absl::Status scan = store.ScanRunSummariesInParts(
        parts, &TrainingSummaryOf,
        [&](size_t part, int64_t time_unix_ms, std::string_view run_id, std::string_view summary) {
          PartKeys& p = local[part];
          // As the statistics rebuilt at start-up (ScanRuns from 0): validation refuses negative times; a store
          // written by an older release or an import may still hold some.
          if (time_unix_ms < 0) return true;
          if (summary.size() != kSummaryBytes) {
            malformed.store(true);
            return false;
          }
          ++p.scanned;
          const uint64_t node = ReadLittleEndian64(summary, 24);
          if (options.distrusted.contains(node)) {
            ++p.distrusted;
            return true;
          }
          SideKeys& side = options.in_holdout(ReadLittleEndian64(summary, 8)) ? p.holdout : p.train;
          side.cap.push_back(model::RowCapKey{ReadLittleEndian64(summary, 0), ReadLittleEndian64(summary, 16), node,
                                              time_unix_ms, util::StableHash(run_id)});
          side.draw.push_back(model::ThinningDraw(run_id));
          if (p.train.cap.size() + p.holdout.cap.size() >= kHandOverKeys) hand_over(p);
          return true;
        });
    if (!scan.ok()) return scan;
    // Only a summary made under another format could be: stored ones are made again when a store is opened with
    // another (storage::StoreOptions::run_summary_format).
    if (malformed.load()) return absl::DataLossError("a stored run summary is not a training summary of this build");
    for (PartKeys& p : local) {
      hand_over(p);
      set.scanned += p.scanned;
      set.distrusted += p.distrusted;
    }
    // The parts handed their keys over in no fixed order; neither choice depends on it (both order the keys
    // themselves).
    Thin(&train, &set);
    Thin(&holdout, &set);
    const auto [train_cap, holdout_cap] = SplitRowCap(train.cap.size(), holdout.cap.size(), options.max_rows);
    set.train.reserve(Cap(std::move(train.cap), train_cap, false, &set, &chosen));
    set.holdout.reserve(Cap(std::move(holdout.cap), holdout_cap, true, &set, &chosen));
  }
  struct PartRuns {
    std::vector<model::RunRecord> train, holdout;
  };
  std::vector<PartRuns> found(parts);
  const auto hand_over = [&](PartRuns& p) {
    absl::MutexLock lock(&mu);
    MoveAppend(&p.train, &set.train);
    MoveAppend(&p.holdout, &set.holdout);
  };
  absl::Status scan = store.ScanRunsInParts(
      parts, [&](std::string_view run_id) { return std::as_const(chosen).contains(util::StableHash(run_id)); },
      [&](size_t part, const v1::RunReport& r) {
        const Chosen& c = std::as_const(chosen).at(util::StableHash(r.run_id()));
        if (r.time_unix_ms() != c.time_unix_ms || util::StableHash(r.node_id()) != c.node) return true;
        model::RunRecord rec = FromProto(r);
        if (options.in_holdout(model::HoldoutContextKey(rec.context)) != c.holdout) return true;
        if (!options.levels.empty()) model::ObservedStats::ToBaseLevel(options.levels, &rec);
        PartRuns& p = found[part];
        (c.holdout ? p.holdout : p.train).push_back(std::move(rec));
        if (p.train.size() + p.holdout.size() >= kHandOverRuns) hand_over(p);
        return true;
      });
  if (!scan.ok()) return scan;
  for (PartRuns& p : found) hand_over(p);
  // The store's order is its key order, and the parts handed over in no fixed order; training and scoring take the
  // runs in time order, as the time index has them.
  SortByTimeAndId(&set.train);
  SortByTimeAndId(&set.holdout);
  return set;
}

}  // namespace accelsel::server
