// The trainer's input: the stored runs it learns from and scores on, read so that a retrain holds in full only the runs
// it keeps.
//
// Two passes over the store. The first reads no run that has a summary (one stored without, by an older release, is
// looked up and summarised): it reads the summary the store keeps of each (TrainingSummaryOf, made when the run was
// stored: its context's two keys, its strategy's and node's hashes; with the time and id from the time index,
// TelemetryStore::ScanRunSummariesInParts), keeps a small key of each (48 bytes a run against about 575 for a
// converted run), splits them by the held-out rule, leaves out distrusted nodes, and chooses on keys alone what
// the node-share thinning (model/robust.h) and the row cap (model/row_cap.h) keep. The second walks the runs in the
// store's own order (sequential reads; the store asks on the id before it reads a value), parses and converts only the
// runs chosen, and puts each side in time order. A store of 10 million runs with a cap of one million thus parses and
// converts one million runs, as a store of one million does; what still grows with the store is reading the summaries,
// the second pass's walk over every run's bytes, and the first pass's keys and the choice made on them, about 100
// bytes a stored run for a moment (1 GB at 10 million, against about 575 bytes a run converted). Each pass reads on
// `scan_threads` threads at once, each on its own range of the store's keys; what is chosen, and in which order, does
// not depend on it.
//
// The passes read two snapshots: a run reported between them is left for the next retrain, and a run that retention
// deleted between them is missing from this one. A chosen run is found again by a 64-bit hash of its id, and taken only
// if its time, node and side of the split are the ones chosen, so a run whose id hashes the same is not taken with it.
#ifndef ACCELSEL_SERVER_TRAINING_SET_H_
#define ACCELSEL_SERVER_TRAINING_SET_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "model/observed_stats.h"
#include "model/types.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// What the store keeps of each run for the first pass (storage::StoreOptions::run_summary): ContextKey and
// HoldoutContextKey of its context, StableHash of its strategy id and of its node id, 32 bytes. Both stable across
// builds and releases (model/context_key.h); a change of what this holds must change kTrainingSummaryFormat, so that
// a store opened by such a build makes every summary again.
std::string TrainingSummaryOf(const v1::RunReport& run);
// The same of the run converted (FromProto), for a caller that has converted it anyway: equal to the above of the
// report it was converted from.
std::string TrainingSummaryOfRecord(const model::RunRecord& run);
inline constexpr char kTrainingSummaryFormat[] = "training 1: context, holdout, strategy, node keys";
// Sets `options` to keep TrainingSummaryOf each run, under kTrainingSummaryFormat: how the server opens its store.
void UseTrainingSummaries(storage::StoreOptions* options);

struct TrainingSetOptions {
  // Whether a context's runs are held out to score models on, by the context's HoldoutContextKey
  // (ModelManager::InHoldoutKey).
  std::function<bool(uint64_t holdout_key)> in_holdout;
  // Nodes whose runs are left out, by ObservedStats::NodeHash.
  absl::flat_hash_set<uint64_t> distrusted;
  // Each strategy's levels: every run kept is restated at its strategy's base level (ObservedStats::ToBaseLevel).
  model::ObservedStats::LevelHistory levels;
  // The row cap (model/row_cap.h), after the thinning: at most this many runs in all, training and held-out together
  // (0 = no cap); when the thinning leaves more, each side is capped at its share of them (SplitRowCap). So a retrain
  // holds what a store of max_rows runs would give it, whatever the store holds.
  size_t max_rows = 0;
  // Threads each pass reads the store on (TelemetryStore::ScanRunsInParts): the caller's and scan_threads - 1 more,
  // at the caller's nice level. The runs chosen and their order do not depend on it.
  size_t scan_threads = 1;
};

struct TrainingSet {
  // In the store's time order.
  std::vector<model::RunRecord> train;
  std::vector<model::RunRecord> holdout;
  // What the first pass read, and what each rule left out (train and held-out together).
  size_t scanned = 0;
  size_t distrusted = 0;
  size_t thinned = 0;
  size_t capped = 0;
};

// Each side's cap when `train` and `held_out` runs are left after the thinning and at most `max_rows` are kept in all:
// their shares of max_rows, rounded, at least one for a side that has runs; {0, 0} (no cap) when max_rows is 0 or
// not exceeded.
std::pair<size_t, size_t> SplitRowCap(size_t train, size_t held_out, size_t max_rows);

absl::StatusOr<TrainingSet> ReadTrainingSet(storage::TelemetryStore& store, const TrainingSetOptions& options);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_TRAINING_SET_H_
