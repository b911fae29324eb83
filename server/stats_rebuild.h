// The observed statistics rebuilt from the store as the server starts: they are a cache of the stored runs, added in
// the order the time index holds them (report time, then run id), as every run since was added as it was stored.
//
// Reading the runs in that order one by one looks each up by its id in the runs' own family, whose table blocks hold
// runs of neighbouring ids: about one compressed block read and decompressed per run (a million runs took 26 s of one
// core here, a third of it in zstd). Instead the runs are read in the store's own key order, each block once, on
// several threads (TelemetryStore::ScanRunsInParts), and each is kept as the little the statistics read of it (72
// bytes: its time, metrics, status, and its context, node and strategy as indices into tables each part keeps once);
// then every part is sorted by time in place and the parts merged, ties by part, so that the runs are added in (time,
// run id) order exactly. What this holds for a moment grows with the store: about 75 bytes a run (0.75 GB at 10
// million runs), freed before the server serves.
#ifndef ACCELSEL_SERVER_STATS_REBUILD_H_
#define ACCELSEL_SERVER_STATS_REBUILD_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "model/observed_stats.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// Adds every stored run with a report time of 0 or later to `stats` (runs with negative times, which validation
// refuses and an older store may hold, are left out, as ScanRuns(0) leaves them), in (time, run id) order, reading on
// `threads` threads (at least 1). Returns the number of runs added. `stats` should be empty.
absl::StatusOr<uint64_t> RebuildObservedStats(storage::TelemetryStore& store, size_t threads,
                                              model::ObservedStats* stats);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_STATS_REBUILD_H_
