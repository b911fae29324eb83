// The trainer's row cap (model/row_cap.h): under the cap nothing changes; over it exactly the cap is kept, every
// (context, strategy) cell keeps min(size, L) of its newest runs, and which runs are kept depends only on the runs.
#include "model/row_cap.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/context_key.h"

namespace accelsel::model {
namespace {

// Context `context` is told apart by its batch size (part of ContextKey).
RunRecord MakeRun(uint32_t context, const std::string& strategy, int64_t time_ms, const std::string& id = "") {
  RunRecord r;
  r.run_id = id.empty() ? absl::StrCat("c", context, "-", strategy, "-", time_ms) : id;
  r.node_id = "node";
  r.time_unix_ms = time_ms;
  r.context.model.name = "llama-3-8b";
  r.context.model.weight_dtype = "bf16";
  r.context.hardware.accelerator = "h100";
  r.context.hardware.count = 1;
  r.context.workload.prompt_tokens = 512;
  r.context.workload.output_tokens = 128;
  r.context.workload.batch_size = 1 + context;
  r.strategy_id = strategy;
  r.metrics.e2e_latency_ms = 100;
  return r;
}

using Cell = std::pair<uint64_t, std::string>;
Cell CellOf(const RunRecord& r) { return {ContextKey(r.context), r.strategy_id}; }

std::map<Cell, std::vector<int64_t>> TimesByCell(const std::vector<RunRecord>& runs) {
  std::map<Cell, std::vector<int64_t>> out;
  for (const RunRecord& r : runs) out[CellOf(r)].push_back(r.time_unix_ms);
  for (auto& [cell, t] : out) std::sort(t.begin(), t.end(), std::greater<>());
  return out;
}

std::set<std::string> Ids(const std::vector<RunRecord>& runs) {
  std::set<std::string> out;
  for (const RunRecord& r : runs) out.insert(r.run_id);
  return out;
}

// Cells of very different sizes over 12 contexts and 5 strategies, report times spread at random.
std::vector<RunRecord> MixedRuns(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<RunRecord> runs;
  int64_t id = 0;
  for (uint32_t c = 0; c < 12; ++c) {
    for (int s = 0; s < 5; ++s) {
      const int size = static_cast<int>((c * 7 + s * 13) % 40) + (c == 3 && s == 2 ? 400 : 0);
      for (int k = 0; k < size; ++k) {
        runs.push_back(MakeRun(c, absl::StrCat("s", s), static_cast<int64_t>(rng() % 100000), absl::StrCat("r", id++)));
      }
    }
  }
  return runs;
}

// The level L of row_cap.h computed the slow way: the largest L with sum min(size, L) <= cap.
size_t Level(const std::map<Cell, std::vector<int64_t>>& cells, size_t cap) {
  size_t level = 0;
  for (;; ++level) {
    size_t total = 0;
    for (const auto& [cell, t] : cells) total += std::min(t.size(), level + 1);
    if (total > cap) return level;
  }
}

TEST(RowCapTest, AtOrBelowTheCapOrWithoutOneNothingChanges) {
  const std::vector<RunRecord> runs = MixedRuns(1);
  for (size_t cap : {size_t{0}, runs.size(), runs.size() + 1, size_t{100000000}}) {
    std::vector<RunRecord> copy = runs;
    EXPECT_EQ(CapTrainingRows(&copy, cap), 0u) << cap;
    ASSERT_EQ(copy.size(), runs.size());
    for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(copy[i].run_id, runs[i].run_id);
  }
}

TEST(RowCapTest, OverTheCapKeepsExactlyTheCapWaterFilledOverCellsNewestFirst) {
  const std::vector<RunRecord> runs = MixedRuns(2);
  const auto before = TimesByCell(runs);
  for (size_t cap : {size_t{1}, size_t{59}, size_t{60}, size_t{61}, size_t{300}, size_t{777}, runs.size() - 1}) {
    std::vector<RunRecord> kept = runs;
    const size_t dropped = CapTrainingRows(&kept, cap);
    ASSERT_EQ(kept.size(), cap);
    EXPECT_EQ(dropped, runs.size() - cap);
    const size_t level = Level(before, cap);
    const auto after = TimesByCell(kept);
    for (const auto& [cell, times] : before) {
      auto it = after.find(cell);
      const size_t n = it == after.end() ? 0 : it->second.size();
      EXPECT_GE(n, std::min(times.size(), level)) << "cap " << cap << " strategy " << cell.second;
      EXPECT_LE(n, std::min(times.size(), level + 1)) << "cap " << cap << " strategy " << cell.second;
      // The newest of the cell: its kept times are the first n of its times, newest first.
      if (n > 0) {
        EXPECT_EQ(it->second, std::vector<int64_t>(times.begin(), times.begin() + static_cast<ptrdiff_t>(n)));
      }
    }
  }
}

TEST(RowCapTest, SmallCellsKeepEverythingAndBigOnesAreCutToTheLevel) {
  // Cells of 1, 2, 5, 20 and 50 runs (one context each): a cap of 28 is 1 + 2 + 5 + 10 + 10, level 10.
  std::vector<RunRecord> runs;
  const int sizes[] = {1, 2, 5, 20, 50};
  for (uint32_t c = 0; c < 5; ++c) {
    for (int k = 0; k < sizes[c]; ++k) runs.push_back(MakeRun(c, "vllm", 1000 * c + k));
  }
  std::vector<RunRecord> kept = runs;
  EXPECT_EQ(CapTrainingRows(&kept, 28), runs.size() - 28);
  std::map<uint32_t, int> count;
  for (const RunRecord& r : kept) ++count[r.context.workload.batch_size - 1];
  EXPECT_EQ(count, (std::map<uint32_t, int>{{0, 1}, {1, 2}, {2, 5}, {3, 10}, {4, 10}}));
  // One more row goes to the big cell of the most recently active context (context 4: times 4000..4049).
  kept = runs;
  CapTrainingRows(&kept, 29);
  count.clear();
  for (const RunRecord& r : kept) ++count[r.context.workload.batch_size - 1];
  EXPECT_EQ(count, (std::map<uint32_t, int>{{0, 1}, {1, 2}, {2, 5}, {3, 10}, {4, 11}}));
  for (const RunRecord& r : kept) {
    if (r.context.workload.batch_size - 1 == 4) {
      EXPECT_GE(r.time_unix_ms, 4039) << "the newest of the cell";
    }
  }
}

TEST(RowCapTest, TheSameRunsAreKeptWhateverTheInputOrderAndTheKeptKeepTheirOrder) {
  const std::vector<RunRecord> runs = MixedRuns(3);
  std::vector<RunRecord> a = runs;
  CapTrainingRows(&a, 250);
  std::vector<RunRecord> shuffled = runs;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(99));
  std::vector<RunRecord> b = shuffled;
  CapTrainingRows(&b, 250);
  EXPECT_EQ(Ids(a), Ids(b));
  // The kept runs are in the order they came in.
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < shuffled.size(); ++i) position[shuffled[i].run_id] = i;
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(position[b[i - 1].run_id], position[b[i].run_id]);
  // And the key-only form chooses what CapTrainingRows keeps (a two-pass scan can use it).
  std::vector<RowCapKey> keys;
  for (const RunRecord& r : runs) keys.push_back(RowCapKeyOf(r));
  const std::vector<bool> keep = ChooseCappedRows(keys, 250);
  std::set<std::string> chosen;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (keep[i]) chosen.insert(runs[i].run_id);
  }
  EXPECT_EQ(chosen, Ids(a));
}

TEST(RowCapTest, RunsOfOneMillisecondAreToldApartByRunId) {
  std::vector<RunRecord> runs;
  for (int k = 0; k < 10; ++k) runs.push_back(MakeRun(0, "vllm", 5, absl::StrCat("same-ms-", k)));
  std::vector<RunRecord> a = runs, b(runs.rbegin(), runs.rend());
  CapTrainingRows(&a, 4);
  CapTrainingRows(&b, 4);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(Ids(a), Ids(b));
}

TEST(RowCapTest, MoreCellsThanTheCapKeepTheNewestRunOfTheMostRecentContextsWholeAndNeverExceedIt) {
  // 10 contexts x 3 strategies x 2 runs; context c was last active at time 100 * c + 1.
  std::vector<RunRecord> runs;
  for (uint32_t c = 0; c < 10; ++c) {
    for (const char* s : {"a", "b", "c"}) {
      runs.push_back(MakeRun(c, s, 100 * c));
      runs.push_back(MakeRun(c, s, 100 * c + 1));
    }
  }
  std::vector<RunRecord> kept = runs;
  EXPECT_EQ(CapTrainingRows(&kept, 7), runs.size() - 7);
  ASSERT_EQ(kept.size(), 7u);
  std::map<uint32_t, std::set<std::string>> strategies;
  for (const RunRecord& r : kept) {
    const uint32_t c = r.context.workload.batch_size - 1;
    EXPECT_EQ(r.time_unix_ms, 100 * c + 1) << "one run per cell, its newest";
    EXPECT_TRUE(strategies[c].insert(r.strategy_id).second) << "one run per cell";
  }
  // Contexts 9 and 8 whole (all three strategies), then one cell of context 7.
  ASSERT_EQ(strategies.size(), 3u);
  EXPECT_EQ(strategies[9].size(), 3u);
  EXPECT_EQ(strategies[8].size(), 3u);
  EXPECT_EQ(strategies[7].size(), 1u);
  // A cap of one keeps one run.
  kept = runs;
  CapTrainingRows(&kept, 1);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].context.workload.batch_size - 1, 9u);
}

TEST(RowCapTest, ACellKeepsItsNodesInTurnSoTheLastToFloodItDoesNotOwnIt) {
  // One cell: four nodes with 20 older runs each, then a node that reports 500 runs after them all.
  std::vector<RunRecord> runs;
  for (int node = 0; node < 4; ++node) {
    for (int k = 0; k < 20; ++k) {
      RunRecord r = MakeRun(0, "vllm", 1000 + 100 * node + k, absl::StrCat("honest", node, "-", k));
      r.node_id = absl::StrCat("honest", node);
      runs.push_back(r);
    }
  }
  for (int k = 0; k < 500; ++k) {
    RunRecord r = MakeRun(0, "vllm", 100000 + k, absl::StrCat("flood-", k));
    r.node_id = "flooder";
    runs.push_back(r);
  }
  std::vector<RunRecord> kept = runs;
  CapTrainingRows(&kept, 42);
  std::map<std::string, std::vector<int64_t>> by_node;
  for (const RunRecord& r : kept) by_node[r.node_id].push_back(r.time_unix_ms);
  // 42 = 8 rounds of five nodes, then the two newest nodes' ninth runs: the flooder and honest3.
  ASSERT_EQ(by_node.size(), 5u);
  EXPECT_EQ(by_node["flooder"].size(), 9u);
  EXPECT_EQ(by_node["honest3"].size(), 9u);
  EXPECT_EQ(by_node["honest0"].size(), 8u);
  // Each node's newest.
  EXPECT_EQ(*std::min_element(by_node["flooder"].begin(), by_node["flooder"].end()), 100000 + 500 - 9);
  EXPECT_EQ(*std::min_element(by_node["honest0"].begin(), by_node["honest0"].end()), 1000 + 20 - 8);
  // With 200 rows the honest nodes keep all their 80 and the flooder the rest.
  kept = runs;
  CapTrainingRows(&kept, 200);
  by_node.clear();
  for (const RunRecord& r : kept) by_node[r.node_id].push_back(r.time_unix_ms);
  EXPECT_EQ(by_node["flooder"].size(), 120u);
  EXPECT_EQ(by_node["honest2"].size(), 20u);
}

TEST(RowCapTest, CellsAreExactContextsAsContextKeyTellsThemApart) {
  // Names differ only in case: one context, one cell of 4 runs. An extra feature makes another context.
  std::vector<RunRecord> runs;
  for (int k = 0; k < 4; ++k) {
    RunRecord r = MakeRun(0, "vllm", k);
    if (k % 2) r.context.model.name = "LLaMA-3-8B";
    runs.push_back(r);
  }
  RunRecord other = MakeRun(0, "vllm", 0, "with-extra");
  other.context.extra["table_rows"] = 1e6;
  runs.push_back(other);
  std::vector<RunRecord> kept = runs;
  CapTrainingRows(&kept, 3);
  // Level 2: the extra-feature context's one run and the newest two of the four.
  EXPECT_EQ(Ids(kept), (std::set<std::string>{"with-extra", "c0-vllm-3", "c0-vllm-2"}));
}

}  // namespace
}  // namespace accelsel::model
