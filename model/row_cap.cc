// The trainer's row cap (see row_cap.h): water-filling over (context, strategy) cells, each keeping its newest runs
// with its nodes in turn.
#include "model/row_cap.h"

#include <algorithm>
#include <limits>
#include <tuple>
#include <utility>

#include "model/context_key.h"
#include "util/hash.h"

namespace accelsel::model {
namespace {

// A key with its run's position in the input and its rank among its node's runs of its cell (0 = the node's newest).
struct Entry {
  RowCapKey key;
  uint32_t index = 0;
  uint32_t node_rank = 0;
};

bool SameCell(const Entry& a, const Entry& b) {
  return a.key.context == b.key.context && a.key.strategy == b.key.strategy;
}

// By cell, then by node, newest first.
bool CellNodeNewest(const Entry& a, const Entry& b) {
  return std::tie(a.key.context, a.key.strategy, a.key.node, b.key.time_unix_ms, a.key.run, a.index) <
         std::tie(b.key.context, b.key.strategy, b.key.node, a.key.time_unix_ms, b.key.run, b.index);
}

// Within a cell, the order runs are kept in: every node's newest, newest first, then every node's second newest...
bool NodesInTurn(const Entry& a, const Entry& b) {
  return std::tie(a.node_rank, b.key.time_unix_ms, a.key.node, a.key.run, a.index) <
         std::tie(b.node_rank, a.key.time_unix_ms, b.key.node, b.key.run, b.index);
}

// Sorts the keys by cell, each cell in the order its runs are kept (NodesInTurn).
std::vector<Entry> SortByCell(const std::vector<RowCapKey>& keys) {
  const size_t n = keys.size();
  std::vector<Entry> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = Entry{keys[i], static_cast<uint32_t>(i), 0};
  std::sort(sorted.begin(), sorted.end(), CellNodeNewest);
  for (size_t p = 1; p < n; ++p) {
    if (SameCell(sorted[p], sorted[p - 1]) && sorted[p].key.node == sorted[p - 1].key.node) {
      sorted[p].node_rank = sorted[p - 1].node_rank + 1;
    }
  }
  for (size_t begin = 0; begin < n;) {
    size_t end = begin + 1;
    while (end < n && SameCell(sorted[end], sorted[begin])) ++end;
    if (sorted[end - 1].node_rank + 1 != end - begin) {  // more than one node in the cell
      std::sort(sorted.begin() + static_cast<std::ptrdiff_t>(begin), sorted.begin() + static_cast<std::ptrdiff_t>(end),
                NodesInTurn);
    }
    begin = end;
  }
  return sorted;
}

// A context with cells holding more than the level: its newest report time and where its runs start in the sort.
struct BoundaryContext {
  int64_t newest_ms = 0;
  uint64_t context = 0;
  size_t begin = 0, end = 0;
};

}  // namespace

RowCapKey RowCapKeyOf(uint64_t context_key, std::string_view strategy_id, std::string_view node_id,
                      int64_t time_unix_ms, std::string_view run_id) {
  return RowCapKey{context_key, util::StableHash(strategy_id), util::StableHash(node_id), time_unix_ms,
                   util::StableHash(run_id)};
}

RowCapKey RowCapKeyOf(const RunRecord& run) {
  return RowCapKeyOf(ContextKey(run.context), run.strategy_id, run.node_id, run.time_unix_ms, run.run_id);
}

std::vector<bool> ChooseCappedRows(const std::vector<RowCapKey>& keys, size_t max_rows) {
  const size_t n = keys.size();
  // Positions are kept in 32 bits (the sort's memory is most of the cap's): a larger input is left whole.
  if (max_rows == 0 || n <= max_rows || n > std::numeric_limits<uint32_t>::max()) return std::vector<bool>(n, true);
  const std::vector<Entry> sorted = SortByCell(keys);

  // A run's rank in its cell (how many newer runs the cell holds); runs_at_rank[r]: runs of rank r over all cells.
  std::vector<size_t> runs_at_rank;
  for (size_t p = 0, rank = 0; p < n; ++p) {
    rank = p > 0 && SameCell(sorted[p], sorted[p - 1]) ? rank + 1 : 0;
    if (rank == runs_at_rank.size()) runs_at_rank.push_back(0);
    ++runs_at_rank[rank];
  }
  // The level L: every cell keeps min(size, L) runs, which fits; min(size, L + 1) would not (n > max_rows, so such
  // an L exists).
  size_t level = 0, below = 0;
  while (below + runs_at_rank[level] <= max_rows) below += runs_at_rank[level++];

  std::vector<bool> keep(n, false);
  std::vector<BoundaryContext> boundary;
  for (size_t begin = 0, rank = 0; begin < n;) {
    size_t end = begin;
    int64_t newest = sorted[begin].key.time_unix_ms;
    bool over_level = false;
    for (; end < n && sorted[end].key.context == sorted[begin].key.context; ++end) {
      rank = end > begin && SameCell(sorted[end], sorted[end - 1]) ? rank + 1 : 0;
      newest = std::max(newest, sorted[end].key.time_unix_ms);
      if (rank < level) keep[sorted[end].index] = true;
      over_level = over_level || rank == level;
    }
    if (over_level) boundary.push_back(BoundaryContext{newest, sorted[begin].key.context, begin, end});
    begin = end;
  }
  // The budget left (less than one run per cell holding more than L) goes to the (L+1)-th runs of the most recently
  // active contexts, a context's cells together, in strategy order.
  std::sort(boundary.begin(), boundary.end(), [](const BoundaryContext& a, const BoundaryContext& b) {
    return a.newest_ms != b.newest_ms ? a.newest_ms > b.newest_ms : a.context < b.context;
  });
  size_t left = max_rows - below;
  for (size_t c = 0; c < boundary.size() && left > 0; ++c) {
    for (size_t p = boundary[c].begin, rank = 0; p < boundary[c].end && left > 0; ++p) {
      rank = p > boundary[c].begin && SameCell(sorted[p], sorted[p - 1]) ? rank + 1 : 0;
      if (rank == level) {
        keep[sorted[p].index] = true;
        --left;
      }
    }
  }
  return keep;
}

size_t CapTrainingRows(std::vector<RunRecord>* runs, size_t max_rows) {
  if (max_rows == 0 || runs->size() <= max_rows) return 0;
  std::vector<bool> keep;
  {
    std::vector<RowCapKey> keys;
    keys.reserve(runs->size());
    for (const RunRecord& r : *runs) keys.push_back(RowCapKeyOf(r));
    keep = ChooseCappedRows(keys, max_rows);
  }
  size_t out = 0;
  for (size_t i = 0; i < runs->size(); ++i) {
    if (!keep[i]) continue;
    if (out != i) (*runs)[out] = std::move((*runs)[i]);
    ++out;
  }
  const size_t dropped = runs->size() - out;
  runs->erase(runs->begin() + static_cast<std::ptrdiff_t>(out), runs->end());
  // The buffer sized for every stored run is most of the memory the cap exists to bound: hand it back (the kept runs
  // are moved into a buffer of their own size).
  runs->shrink_to_fit();
  return dropped;
}

}  // namespace accelsel::model
