// The trainer's row cap: at most a fixed number of training runs, spread over the (task context, strategy) cells by
// water-filling, so that a retrain costs what the distinct contexts call for, not what the store holds.
#ifndef ACCELSEL_MODEL_ROW_CAP_H_
#define ACCELSEL_MODEL_ROW_CAP_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "model/types.h"

namespace accelsel::model {

// All the cap reads of a run: its cell and its age. Small, so that a caller that cannot hold every run (a two-pass
// scan of the store) can choose from the keys alone and convert only the runs kept.
struct RowCapKey {
  uint64_t context = 0;   // ContextKey(run.context): the exact task, as the observed statistics key it
  uint64_t strategy = 0;  // util::StableHash(run.strategy_id)
  uint64_t node = 0;      // util::StableHash(run.node_id)
  int64_t time_unix_ms = 0;
  uint64_t run = 0;  // util::StableHash(run.run_id): orders runs reported in the same millisecond
};
RowCapKey RowCapKeyOf(const RunRecord& run);
// The same from a run's parts, for a caller that has not built its RunRecord; `context_key` = ContextKey(context).
RowCapKey RowCapKeyOf(uint64_t context_key, std::string_view strategy_id, std::string_view node_id,
                      int64_t time_unix_ms, std::string_view run_id);

// Which runs the cap keeps: keep[i] for keys[i]. Every run is kept when max_rows == 0 (no cap) or when there are at
// most max_rows runs. Otherwise exactly max_rows are kept:
//  - each (context, strategy) cell keeps its newest runs (report time; ties by run id), its nodes in turn: every
//    node's newest run, newest first, then every node's second newest, and so on. Newest, because a strategy's
//    software and a node's setup change over time, so a cell's old runs say less about it than its new ones (a
//    hash-spread sample would still hold stale runs a year on). Nodes in turn, because newest alone would undo the
//    node-share thinning (robust.h) that runs before the cap: a node that floods a cell last would own every row
//    the cell keeps; in turn, no node keeps more of a cell than any other node that has runs left there.
//  - water-filling over the cells: with L the largest level such that sum over cells of min(size, L) <= max_rows,
//    every cell keeps min(size, L) runs, so a small cell keeps all of its runs and a big one is cut to L. The budget
//    left, less than one run per cell still holding more than L, gives an (L+1)-th run to the cells of the most
//    recently active contexts (the newest run of the whole context; ties by context key), a context's cells
//    together, so that as many contexts as possible keep runs of all their strategies to compare.
//  - more cells than max_rows (L = 0) is the same rule: the cap is never exceeded; the most recently active
//    contexts keep the newest run of each of their cells, and the contexts idle the longest are left out (the
//    observed statistics still answer for them). Whole contexts rather than single cells, because a context with
//    one strategy left teaches nothing about which strategy wins there.
// Deterministic and independent of the order of `keys` (up to runs with equal keys, i.e. duplicate run ids).
// O(n log n) time, O(n) memory (a sorted copy of the keys, 48 bytes a run). More than 2^32 runs are all kept.
std::vector<bool> ChooseCappedRows(const std::vector<RowCapKey>& keys, size_t max_rows);

// Applies ChooseCappedRows to `runs` in place: the runs kept stay in their input order (moved, not copied); returns
// the number dropped. max_rows == 0 = no cap.
size_t CapTrainingRows(std::vector<RunRecord>* runs, size_t max_rows);

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_ROW_CAP_H_
