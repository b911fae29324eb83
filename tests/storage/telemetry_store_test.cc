// Tests of the RocksDB TelemetryStore on real RocksDB folders: dedup, scans, snapshots, schema refusal,
// concurrency, a SIGKILL crash test and a fault-injected write error.
#include "storage/telemetry_store.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "accelsel/v1/accelsel.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/write_batch.h"
#include "storage/rocksdb_store.h"
#include "tests/test_util/fault_env.h"

namespace accelsel::storage {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::RunReport MakeRun(const std::string& run_id, int64_t time_unix_ms, double e2e_latency_ms = 100.0) {
  v1::RunReport run;
  run.set_run_id(run_id);
  run.set_node_id("node-a");
  run.set_time_unix_ms(time_unix_ms);
  run.set_strategy_id("vllm-continuous-batching");
  run.set_status(v1::RUN_STATUS_OK);
  run.mutable_context()->mutable_model()->set_name("llama-3-8b");
  run.mutable_context()->mutable_hardware()->set_accelerator("H100");
  run.mutable_metrics()->set_e2e_latency_ms(e2e_latency_ms);
  return run;
}

std::vector<const v1::RunReport*> Pointers(const std::vector<v1::RunReport>& runs) {
  std::vector<const v1::RunReport*> pointers;
  for (const v1::RunReport& run : runs) pointers.push_back(&run);
  return pointers;
}

class TelemetryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("ACCELSEL_TEST_TMPDIR");
    // Parameterised test names contain '/': keep the folder a direct child of the temp dir.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/storage_", name, "_", getpid());
    std::filesystem::remove_all(dir_);
    options_.path = dir_;
    options_.block_cache_mb = 8;
    options_.write_buffer_mb = 4;
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<TelemetryStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<TelemetryStore>> store = TelemetryStore::Open(options_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Every run the store yields on a full scan, in order.
  static std::vector<v1::RunReport> ScanAll(TelemetryStore& store, int64_t min_time_unix_ms = INT64_MIN) {
    std::vector<v1::RunReport> runs;
    absl::Status status = store.ScanRuns(min_time_unix_ms, [&](const v1::RunReport& run) {
      runs.push_back(run);
      return true;
    });
    EXPECT_TRUE(status.ok()) << status;
    return runs;
  }

  std::string dir_;
  StoreOptions options_;
};

TEST_F(TelemetryStoreTest, AppendStoresNewRunsAndFlagsResentOnesAsDuplicates) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> first = {MakeRun("a", 1000), MakeRun("b", 2000)};
  absl::StatusOr<std::vector<AppendResult>> results = store->AppendRuns(Pointers(first));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT(*results, ElementsAre(AppendResult::kStored, AppendResult::kStored));

  // "a" resent with a different payload: a duplicate, and the stored copy is the first one.
  std::vector<v1::RunReport> second = {MakeRun("a", 1000, 999.0), MakeRun("c", 3000)};
  results = store->AppendRuns(Pointers(second));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT(*results, ElementsAre(AppendResult::kDuplicate, AppendResult::kStored));
  EXPECT_EQ(store->RunCount(), 3u);
  absl::StatusOr<v1::RunReport> a = store->GetRun("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->metrics().e2e_latency_ms(), 100.0);
  EXPECT_EQ(ScanAll(*store).size(), 3u);
}

TEST_F(TelemetryStoreTest, AppendFlagsRepeatsWithinOneBatch) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> batch = {MakeRun("a", 1, 1.0), MakeRun("b", 2), MakeRun("a", 1, 2.0), MakeRun("c", 3),
                                      MakeRun("b", 2)};
  absl::StatusOr<std::vector<AppendResult>> results = store->AppendRuns(Pointers(batch));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT(*results, ElementsAre(AppendResult::kStored, AppendResult::kStored, AppendResult::kDuplicate,
                                    AppendResult::kStored, AppendResult::kDuplicate));
  EXPECT_EQ(store->RunCount(), 3u);
  EXPECT_EQ(store->GetRun("a")->metrics().e2e_latency_ms(), 1.0);  // the first occurrence wins
  EXPECT_EQ(ScanAll(*store).size(), 3u);                           // the time index holds no duplicate either
}

TEST_F(TelemetryStoreTest, AppendWithMetaWritesThePositionWithTheRunsEvenWhenAllAreDuplicates) {
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::vector<v1::RunReport> first = {MakeRun("a", 1000), MakeRun("b", 2000)};
    auto results = store->AppendRunsWithMeta(Pointers(first), "position", "7");
    ASSERT_TRUE(results.ok()) << results.status();
    EXPECT_THAT(*results, ElementsAre(AppendResult::kStored, AppendResult::kStored));
    // Only duplicates: the position still moves, the count does not.
    results = store->AppendRunsWithMeta(Pointers(first), "position", "9");
    ASSERT_TRUE(results.ok()) << results.status();
    EXPECT_THAT(*results, ElementsAre(AppendResult::kDuplicate, AppendResult::kDuplicate));
    // No runs at all (every message of a batch skipped): the position alone.
    results = store->AppendRunsWithMeta({}, "position", "10");
    ASSERT_TRUE(results.ok()) << results.status();
    EXPECT_EQ(store->RunCount(), 2u);
    EXPECT_EQ(store->AppendRunsWithMeta({}, kRunCountKey, "0").status().code(), absl::StatusCode::kInvalidArgument);
  }
  std::unique_ptr<TelemetryStore> store = OpenStore();  // reopened: both survived together
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RunCount(), 2u);
  auto position = store->GetMeta("position");
  ASSERT_TRUE(position.ok()) << position.status();
  EXPECT_EQ(position->value_or(""), "10");
}

TEST_F(TelemetryStoreTest, AppendRejectsEmptyRunIdAndWritesNothing) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> batch = {MakeRun("ok", 1), MakeRun("", 2)};
  absl::StatusOr<std::vector<AppendResult>> results = store->AppendRuns(Pointers(batch));
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->RunCount(), 0u);
  EXPECT_EQ(store->GetRun("ok").status().code(), absl::StatusCode::kNotFound);
  // An empty call is fine and writes nothing.
  results = store->AppendRuns({});
  ASSERT_TRUE(results.ok());
  EXPECT_TRUE(results->empty());
}

TEST_F(TelemetryStoreTest, GetRunReturnsTheStoredReportOrNotFound) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::RunReport run = MakeRun("run-1", 1234);
  run.set_decision_id("decision-7");
  run.set_status(v1::RUN_STATUS_OOM);
  run.mutable_metrics()->set_peak_memory_gb(79.5);
  ASSERT_TRUE(store->AppendRuns({&run}).ok());
  absl::StatusOr<v1::RunReport> got = store->GetRun("run-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*got, run)) << got->DebugString();
  absl::StatusOr<v1::RunReport> missing = store->GetRun("run-2");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("run-2"));
}

TEST_F(TelemetryStoreTest, RunCountAndRunsSurviveReopen) {
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::vector<v1::RunReport> runs;
    for (int i = 0; i < 50; ++i) runs.push_back(MakeRun(absl::StrCat("r", i), i));
    ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
    EXPECT_EQ(store->RunCount(), 50u);
  }
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->RunCount(), 50u);
    // Dedup also holds across a restart, and the counter keeps counting from where it was.
    std::vector<v1::RunReport> more = {MakeRun("r7", 7), MakeRun("r50", 50)};
    absl::StatusOr<std::vector<AppendResult>> results = store->AppendRuns(Pointers(more));
    ASSERT_TRUE(results.ok());
    EXPECT_THAT(*results, ElementsAre(AppendResult::kDuplicate, AppendResult::kStored));
    ASSERT_TRUE(store->Flush().ok());
  }
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RunCount(), 51u);
  EXPECT_EQ(ScanAll(*store).size(), 51u);
}

TEST_F(TelemetryStoreTest, CheckpointIsARestorableCopyOfEveryFamily) {
  const std::string backup = dir_ + "-backup";
  std::filesystem::remove_all(backup);
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::vector<v1::RunReport> runs;
    for (int i = 0; i < 30; ++i) runs.push_back(MakeRun(absl::StrCat("r", i), i));
    ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
    v1::Strategy strategy;
    strategy.set_id("s1");
    ASSERT_TRUE(store->PutStrategy(strategy).ok());
    ASSERT_TRUE(store->PutMeta("serving_version", "3").ok());
    ASSERT_TRUE(store->PutDecisions({{"d1", "logged"}}).ok());  // unsynced: the checkpoint's flush must keep it

    absl::StatusOr<uint64_t> copied = store->Checkpoint(backup);
    ASSERT_TRUE(copied.ok()) << copied.status();
    EXPECT_EQ(*copied, 30u);
    // The live store goes on after the backup; the copy does not see later runs.
    ASSERT_TRUE(store->AppendRuns(Pointers(std::vector<v1::RunReport>{MakeRun("r-late", 99)})).ok());

    absl::StatusOr<uint64_t> again = store->Checkpoint(backup);
    EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_THAT(again.status().message(), HasSubstr(backup));
    absl::StatusOr<uint64_t> orphan = store->Checkpoint(dir_ + "-no-such-parent/backup");
    EXPECT_EQ(orphan.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  // Restore = open the copy as a store folder.
  options_.path = backup;
  std::unique_ptr<TelemetryStore> restored = OpenStore();
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(restored->RunCount(), 30u);
  EXPECT_EQ(ScanAll(*restored).size(), 30u);
  EXPECT_TRUE(restored->GetRun("r29").ok());
  EXPECT_EQ(restored->GetRun("r-late").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<v1::Strategy>> strategies = restored->ListStrategies();
  ASSERT_TRUE(strategies.ok());
  ASSERT_EQ(strategies->size(), 1u);
  absl::StatusOr<std::optional<std::string>> meta = restored->GetMeta("serving_version");
  ASSERT_TRUE(meta.ok() && meta->has_value());
  EXPECT_EQ(**meta, "3");
  absl::StatusOr<std::optional<std::string>> decision = restored->GetDecision("d1");
  ASSERT_TRUE(decision.ok() && decision->has_value());
  restored.reset();
  if (!HasFailure()) std::filesystem::remove_all(backup);
}

TEST_F(TelemetryStoreTest, DeleteRunsBeforeRemovesTheOldestInBatchesAndKeepsTheCount) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> runs;
  for (int i = 0; i < 25; ++i) runs.push_back(MakeRun(absl::StrCat("r", i), 1000 + i));
  ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());

  EXPECT_EQ(store->DeleteRunsBefore(1010, 0).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<uint64_t> first = store->DeleteRunsBefore(1010, 4);  // 10 runs are older than 1010
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 4u);
  EXPECT_EQ(store->RunCount(), 21u);
  EXPECT_EQ(store->GetRun("r0").status().code(), absl::StatusCode::kNotFound);  // oldest first
  EXPECT_TRUE(store->GetRun("r4").ok());
  uint64_t total = *first;
  for (int calls = 0; calls < 10; ++calls) {
    absl::StatusOr<uint64_t> more = store->DeleteRunsBefore(1010, 4);
    ASSERT_TRUE(more.ok()) << more.status();
    total += *more;
    if (*more < 4) break;
  }
  EXPECT_EQ(total, 10u);
  EXPECT_EQ(store->RunCount(), 15u);
  std::vector<v1::RunReport> left = ScanAll(*store);
  ASSERT_EQ(left.size(), 15u);
  EXPECT_EQ(left.front().run_id(), "r10");  // the run at the cutoff stays
  absl::StatusOr<uint64_t> none = store->DeleteRunsBefore(1010, 4);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
  // A deleted run_id is new again; the count survives a reopen.
  absl::StatusOr<std::vector<AppendResult>> resent =
      store->AppendRuns(Pointers(std::vector<v1::RunReport>{MakeRun("r0", 1000)}));
  ASSERT_TRUE(resent.ok());
  EXPECT_THAT(*resent, ElementsAre(AppendResult::kStored));
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RunCount(), 16u);
  EXPECT_EQ(ScanAll(*store).size(), 16u);
}

TEST_F(TelemetryStoreTest, ScanRunsIsTimeOrderedAndHonoursMinTime) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  // More runs than one scan chunk, in shuffled order, with tied times and a negative time.
  std::mt19937 rng(42);
  std::vector<v1::RunReport> runs;
  for (int i = 0; i < 700; ++i) {
    runs.push_back(MakeRun(absl::StrCat("run-", rng() % 100000, "-", i), static_cast<int64_t>(rng() % 300) - 5));
  }
  std::shuffle(runs.begin(), runs.end(), rng);
  for (size_t begin = 0; begin < runs.size(); begin += 100) {
    std::vector<const v1::RunReport*> chunk;
    for (size_t i = begin; i < begin + 100; ++i) chunk.push_back(&runs[i]);
    ASSERT_TRUE(store->AppendRuns(chunk).ok());
  }

  std::vector<std::pair<int64_t, std::string>> expected;
  for (const v1::RunReport& run : runs) expected.emplace_back(run.time_unix_ms(), run.run_id());
  std::sort(expected.begin(), expected.end());
  std::vector<std::pair<int64_t, std::string>> scanned;
  for (const v1::RunReport& run : ScanAll(*store)) scanned.emplace_back(run.time_unix_ms(), run.run_id());
  EXPECT_EQ(scanned, expected);

  std::vector<std::pair<int64_t, std::string>> recent;
  for (const v1::RunReport& run : ScanAll(*store, 150)) recent.emplace_back(run.time_unix_ms(), run.run_id());
  std::vector<std::pair<int64_t, std::string>> expected_recent;
  std::copy_if(expected.begin(), expected.end(), std::back_inserter(expected_recent),
               [](const auto& entry) { return entry.first >= 150; });
  ASSERT_FALSE(expected_recent.empty());
  EXPECT_EQ(recent, expected_recent);

  // The callback returning false stops the scan at once.
  int seen = 0;
  ASSERT_TRUE(store->ScanRuns(INT64_MIN, [&](const v1::RunReport&) { return ++seen < 3; }).ok());
  EXPECT_EQ(seen, 3);
}

TEST_F(TelemetryStoreTest, ScanRunsSeesASnapshotTakenWhenItStarts) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> runs;
  for (int i = 0; i < 300; ++i) runs.push_back(MakeRun(absl::StrCat("old-", i), 1000 + i));
  ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());

  // While the scan runs, append runs that sort before, among and after the ones being scanned.
  std::vector<v1::RunReport> late = {MakeRun("late-early", 0), MakeRun("late-middle", 1150),
                                     MakeRun("late-end", 99999)};
  int scanned = 0;
  bool appended = false;
  absl::Status status = store->ScanRuns(INT64_MIN, [&](const v1::RunReport& run) {
    EXPECT_EQ(run.run_id().rfind("old-", 0), 0u) << run.run_id();
    if (!appended) {
      appended = store->AppendRuns(Pointers(late)).ok();
    }
    ++scanned;
    return true;
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(appended);
  EXPECT_EQ(scanned, 300);
  EXPECT_EQ(store->RunCount(), 303u);
  EXPECT_EQ(ScanAll(*store).size(), 303u);
}

TEST_F(TelemetryStoreTest, ScanRunsUnorderedVisitsEveryRunOnceOnASnapshotAndStops) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> runs;
  for (int i = 0; i < 700; ++i) runs.push_back(MakeRun(absl::StrCat("r", i), static_cast<int64_t>(i % 90) - 10));
  ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
  std::vector<v1::RunReport> more = {MakeRun("late-a", 5), MakeRun("late-b", -3)};
  ASSERT_TRUE(store->AppendRuns(Pointers(more)).ok());
  std::multiset<std::pair<int64_t, std::string>> expected, seen;
  for (const v1::RunReport& run : ScanAll(*store)) expected.emplace(run.time_unix_ms(), run.run_id());
  // Runs appended while the scan runs are not seen.
  std::vector<v1::RunReport> during = {MakeRun("during-a", 1), MakeRun("during-b", 99999)};
  bool appended = false;
  absl::Status status = store->ScanRunsUnordered(nullptr, [&](const v1::RunReport& run) {
    if (!appended) appended = store->AppendRuns(Pointers(during)).ok();
    seen.emplace(run.time_unix_ms(), run.run_id());
    return true;
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(appended);
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(store->RunCount(), expected.size() + during.size());
  int calls = 0;
  ASSERT_TRUE(store->ScanRunsUnordered(nullptr, [&](const v1::RunReport&) { return ++calls < 4; }).ok());
  EXPECT_EQ(calls, 4);
}

TEST_F(TelemetryStoreTest, ScanRunsUnorderedAsksForEveryIdAndReadsOnlyTheRunsAccepted) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> runs;
  for (int i = 0; i < 2000; ++i) runs.push_back(MakeRun(absl::StrCat("r", i), static_cast<int64_t>(i % 500) - 50));
  ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
  const auto accepted = [](std::string_view id) { return std::hash<std::string_view>()(id) % 7 == 0; };
  std::multiset<std::string> all, expected, asked, read;
  for (const v1::RunReport& run : ScanAll(*store)) {
    all.insert(run.run_id());
    if (accepted(run.run_id())) expected.insert(run.run_id());
  }
  absl::Status status = store->ScanRunsUnordered(
      [&](std::string_view id) {
        asked.emplace(id);
        return accepted(id);
      },
      [&](const v1::RunReport& run) {
        EXPECT_TRUE(accepted(run.run_id())) << run.run_id();
        read.insert(run.run_id());
        return true;
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(asked, all);
  ASSERT_GT(expected.size(), 200u);
  EXPECT_EQ(read, expected);
}

// Three table files of disjoint key ranges (one flush each): a scan in three parts runs them on three threads, each
// part in key order and before the next, every run once; a part that stops stops them all.
TEST_F(TelemetryStoreTest, ScanRunsInPartsSplitsByTableFilesAndVisitsEveryRunOnce) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::set<std::string> expected;
  for (const char* prefix : {"a-", "m-", "z-"}) {
    std::vector<v1::RunReport> runs;
    for (int i = 0; i < 400; ++i) runs.push_back(MakeRun(absl::StrCat(prefix, 1000 + i), i));
    ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
    ASSERT_TRUE(store->Flush().ok());
    for (const v1::RunReport& r : runs) expected.insert(r.run_id());
  }
  std::mutex mu;
  std::map<size_t, std::vector<std::string>> by_part;
  std::map<size_t, std::set<std::thread::id>> threads;
  std::atomic<int> wanted{0};
  absl::Status status = store->ScanRunsInParts(
      3,
      [&](std::string_view) {
        ++wanted;
        return true;
      },
      [&](size_t part, const v1::RunReport& run) {
        std::lock_guard<std::mutex> lock(mu);
        by_part[part].push_back(run.run_id());
        threads[part].insert(std::this_thread::get_id());
        return true;
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(wanted.load(), 1200);
  ASSERT_EQ(by_part.size(), 3u);
  std::set<std::string> seen;
  std::set<std::thread::id> all_threads;
  std::string last;
  for (const auto& [part, ids] : by_part) {
    EXPECT_LT(part, 3u);
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << "part " << part;
    EXPECT_LT(last, ids.front()) << "part " << part << " starts before the one ahead of it ends";
    last = ids.back();
    for (const std::string& id : ids) EXPECT_TRUE(seen.insert(id).second) << id << " seen twice";
    ASSERT_EQ(threads[part].size(), 1u) << "part " << part;
    all_threads.insert(*threads[part].begin());
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(all_threads.size(), 3u);

  // Part 1 stops at its tenth run: every part stops, the scan is OK.
  std::atomic<int> calls{0}, calls_of_part1{0};
  status = store->ScanRunsInParts(3, nullptr, [&](size_t part, const v1::RunReport&) {
    ++calls;
    return part != 1 || ++calls_of_part1 < 10;
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(calls_of_part1.load(), 10);
  EXPECT_LT(calls.load(), 1200);
  // One part asked for: one thread, every run.
  std::set<size_t> parts;
  int runs = 0;
  ASSERT_TRUE(store
                  ->ScanRunsInParts(1, nullptr,
                                    [&](size_t part, const v1::RunReport&) {
                                      parts.insert(part);
                                      ++runs;
                                      return true;
                                    })
                  .ok());
  EXPECT_EQ(parts, std::set<size_t>{0});
  EXPECT_EQ(runs, 1200);
}

// A summary that names its run, its time and the format it was made under, so a test can tell which made it.
std::function<std::string(const v1::RunReport&)> SummaryIn(const std::string& format) {
  return [format](const v1::RunReport& r) { return absl::StrCat(format, ":", r.run_id(), "@", r.time_unix_ms()); };
}

// Every run's summary by run id from ScanRunSummariesInParts on `parts` parts, and how many the scan made with
// `summarize` (those the store held none of).
std::map<std::string, std::string> Summaries(TelemetryStore& store, size_t parts, int* made,
                                             std::set<size_t>* parts_seen = nullptr) {
  std::mutex mu;
  std::map<std::string, std::string> out;
  std::atomic<int> calls{0};
  const std::function<std::string(const v1::RunReport&)> made_here = SummaryIn("scan");
  absl::Status status = store.ScanRunSummariesInParts(
      parts,
      [&](const v1::RunReport& r) {
        ++calls;
        return made_here(r);
      },
      [&](size_t part, int64_t time_unix_ms, std::string_view run_id, std::string_view summary) {
        std::lock_guard<std::mutex> lock(mu);
        EXPECT_TRUE(out.emplace(std::string(run_id), std::string(summary)).second) << run_id << " seen twice";
        EXPECT_THAT(std::string(summary), ::testing::EndsWith(absl::StrCat("@", time_unix_ms)));
        if (parts_seen != nullptr) parts_seen->insert(part);
        return true;
      });
  EXPECT_TRUE(status.ok()) << status;
  *made = calls.load();
  return out;
}

// Summaries are made as runs are stored; a store written without them gets them when it is opened with them, and
// made again when opened under another format; a run stored without one (by an open without run_summary) is
// summarised by the scan from the run itself. Retention takes a run's summary with it.
TEST_F(TelemetryStoreTest, RunSummariesAreMadeAsRunsAreStoredOrWhenTheStoreIsOpenedWithThem) {
  std::vector<v1::RunReport> runs;
  for (int i = 0; i < 300; ++i) runs.push_back(MakeRun(absl::StrCat("r", i), i * 10 - 50));  // a few negative times
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();  // without summaries, as an older build
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
    int made = 0;
    std::map<std::string, std::string> got = Summaries(*store, 1, &made);
    EXPECT_EQ(made, 300);
    EXPECT_EQ(got["r7"], "scan:r7@20");
  }
  options_.run_summary = SummaryIn("v1");
  options_.run_summary_format = "v1";
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();  // made on open
    ASSERT_NE(store, nullptr);
    int made = 0;
    std::map<std::string, std::string> got = Summaries(*store, 1, &made);
    EXPECT_EQ(made, 0);
    ASSERT_EQ(got.size(), 300u);
    EXPECT_EQ(got["r0"], "v1:r0@-50");
    EXPECT_EQ(got["r299"], "v1:r299@2940");
    // New runs get theirs as they are stored; a duplicate keeps the stored run's.
    std::vector<v1::RunReport> more = {MakeRun("n1", 5000), MakeRun("r3", 7777)};
    ASSERT_TRUE(store->AppendRuns(Pointers(more)).ok());
    got = Summaries(*store, 1, &made);
    EXPECT_EQ(made, 0);
    EXPECT_EQ(got.size(), 301u);
    EXPECT_EQ(got["n1"], "v1:n1@5000");
    EXPECT_EQ(got["r3"], "v1:r3@-20");
    // The stamp is the store's own.
    EXPECT_FALSE(store->PutMeta(kRunSummaryFormatKey, "v2").ok());
  }
  {
    // The same format again: nothing is made again (a summary function that would fail the test if it were called).
    StoreOptions same = options_;
    same.run_summary = [](const v1::RunReport& r) {
      ADD_FAILURE() << "summary of " << r.run_id() << " made again";
      return std::string("again");
    };
    absl::StatusOr<std::unique_ptr<TelemetryStore>> store = TelemetryStore::Open(same);
    ASSERT_TRUE(store.ok()) << store.status();
  }
  options_.run_summary = nullptr;
  {
    // An open without run_summary stores a run without one: the scan makes it.
    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::vector<v1::RunReport> bare = {MakeRun("bare", 6000)};
    ASSERT_TRUE(store->AppendRuns(Pointers(bare)).ok());
    int made = 0;
    std::map<std::string, std::string> got = Summaries(*store, 1, &made);
    EXPECT_EQ(made, 1);
    EXPECT_EQ(got["bare"], "scan:bare@6000");
    EXPECT_EQ(got["n1"], "v1:n1@5000");
  }
  options_.run_summary = SummaryIn("v2");
  options_.run_summary_format = "v2";
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();  // another format: all made again
    ASSERT_NE(store, nullptr);
    int made = 0;
    std::map<std::string, std::string> got = Summaries(*store, 1, &made);
    EXPECT_EQ(made, 0);
    ASSERT_EQ(got.size(), 302u);
    for (const auto& [id, summary] : got) EXPECT_EQ(summary.substr(0, 3), "v2:") << id;
    // Retention deletes a run's summary with it.
    absl::StatusOr<uint64_t> deleted = store->DeleteRunsBefore(100, 1000);
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    EXPECT_EQ(*deleted, 15u);
    got = Summaries(*store, 1, &made);
    EXPECT_EQ(got.size(), 287u);
    EXPECT_EQ(got.count("r0"), 0u);
    EXPECT_EQ(made, 0);
  }
}

// A caller that made a run's bytes and summary already hands them in: they are stored as given (the bytes are the
// stored run, the summary the one the scan reads); what it left empty the store makes; duplicates, the run count,
// the meta entry and its key check behave as with AppendRuns and AppendRunsWithMeta.
TEST_F(TelemetryStoreTest, PreparedRunsAreStoredWithTheBytesAndSummaryTheCallerMade) {
  options_.run_summary = SummaryIn("v1");
  options_.run_summary_format = "v1";
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<v1::RunReport> runs = {MakeRun("made", 10), MakeRun("left", 20), MakeRun("meta", 30)};
  v1::RunReport as_stored = runs[0];
  as_stored.set_node_id("node-as-serialized");  // the bytes, not the message, are what is stored
  const std::string bytes = as_stored.SerializeAsString();
  std::vector<TelemetryStore::PreparedRun> prepared = {{&runs[0], bytes, "given:made@10"}, {&runs[1], {}, {}}};
  absl::StatusOr<std::vector<AppendResult>> results = store->AppendPreparedRuns(prepared, nullptr, nullptr);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT(*results, ElementsAre(AppendResult::kStored, AppendResult::kStored));
  absl::StatusOr<v1::RunReport> got = store->GetRun("made");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->node_id(), "node-as-serialized");
  got = store->GetRun("left");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->node_id(), runs[1].node_id());
  int made = 0;
  std::map<std::string, std::string> summaries = Summaries(*store, 1, &made);
  EXPECT_EQ(made, 0);
  EXPECT_EQ(summaries["left"], "v1:left@20");
  EXPECT_EQ(summaries["made"], "given:made@10");
  EXPECT_EQ(store->RunCount(), 2u);
  // Again, with a meta entry: the repeat is a duplicate (its stored bytes and summary stay), the new run is stored
  // and the entry written in the same batch.
  const std::string key = "applied", value = "7";
  prepared = {{&runs[0], "other bytes", "other@10"}, {&runs[2], {}, "given:meta@30"}};
  results = store->AppendPreparedRuns(prepared, &key, &value);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT(*results, ElementsAre(AppendResult::kDuplicate, AppendResult::kStored));
  EXPECT_EQ(store->GetRun("made")->node_id(), "node-as-serialized");
  summaries = Summaries(*store, 1, &made);
  EXPECT_EQ(summaries["made"], "given:made@10");
  EXPECT_EQ(summaries["meta"], "given:meta@30");
  EXPECT_EQ(store->RunCount(), 3u);
  absl::StatusOr<std::optional<std::string>> meta = store->GetMeta(key);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->value_or(""), "7");
  const std::string reserved = kRunSummaryFormatKey;
  EXPECT_FALSE(store->AppendPreparedRuns({}, &reserved, &value).ok());
}

// Three table files of disjoint time ranges: a summary scan in three parts visits every run once on three threads.
TEST_F(TelemetryStoreTest, ScanRunSummariesInPartsSplitsByTimeAndVisitsEveryRunOnce) {
  options_.run_summary = SummaryIn("v1");
  options_.run_summary_format = "v1";
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (int chunk = 0; chunk < 3; ++chunk) {
    std::vector<v1::RunReport> runs;
    for (int i = 0; i < 400; ++i) runs.push_back(MakeRun(absl::StrCat("c", chunk, "-", i), chunk * 100000 + i));
    ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
    ASSERT_TRUE(store->Flush().ok());
  }
  int made = 0;
  std::set<size_t> parts;
  std::map<std::string, std::string> got = Summaries(*store, 3, &made, &parts);
  EXPECT_EQ(made, 0);
  EXPECT_EQ(got.size(), 1200u);
  EXPECT_EQ(parts, (std::set<size_t>{0, 1, 2}));
  EXPECT_EQ(got["c2-399"], "v1:c2-399@200399");
  // A part that stops stops them all.
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      store
          ->ScanRunSummariesInParts(3, SummaryIn("scan"),
                                    [&](size_t, int64_t, std::string_view, std::string_view) { return ++calls < 10; })
          .ok());
  EXPECT_LT(calls.load(), 1200);
}

TEST_F(TelemetryStoreTest, CatalogRoundTripsOrderedByIdAndOverwrites) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (const char* id : {"vllm+spec", "trtllm-fp8", "sglang"}) {
    v1::Strategy strategy;
    strategy.set_id(id);
    strategy.set_description(absl::StrCat("first ", id));
    ASSERT_TRUE(store->PutStrategy(strategy).ok());
  }
  v1::Strategy updated;
  updated.set_id("sglang");
  updated.set_description("second");
  ASSERT_TRUE(store->PutStrategy(updated).ok());
  v1::Strategy unnamed;
  EXPECT_EQ(store->PutStrategy(unnamed).code(), absl::StatusCode::kInvalidArgument);

  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Strategy>> strategies = store->ListStrategies();
  ASSERT_TRUE(strategies.ok()) << strategies.status();
  ASSERT_EQ(strategies->size(), 3u);
  EXPECT_EQ((*strategies)[0].id(), "sglang");
  EXPECT_EQ((*strategies)[0].description(), "second");
  EXPECT_EQ((*strategies)[1].id(), "trtllm-fp8");
  EXPECT_EQ((*strategies)[2].id(), "vllm+spec");
}

TEST_F(TelemetryStoreTest, ModelsRoundTripAndListNewestFirst) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  // Versions chosen so that a little-endian or decimal key order would list them wrongly.
  for (uint64_t version : {3, 256, 1, 20}) {
    ModelBlob model;
    model.version = version;
    model.blob = std::string(1000 + version, static_cast<char>('a' + version % 26));
    model.info.set_learner("xgboost");
    model.info.set_training_rows(version * 10);
    model.info.set_promoted(version % 2 == 1);
    ASSERT_TRUE(store->PutModel(model).ok());
  }
  absl::StatusOr<ModelBlob> model = store->GetModel(256);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->version, 256u);
  EXPECT_EQ(model->blob, std::string(1256, static_cast<char>('a' + 256 % 26)));
  EXPECT_EQ(model->info.version(), 256u);  // filled in from ModelBlob::version
  EXPECT_EQ(model->info.training_rows(), 2560u);
  EXPECT_EQ(store->GetModel(4).status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<std::vector<v1::ModelVersionInfo>> infos = store->ListModels();
  ASSERT_TRUE(infos.ok()) << infos.status();
  std::vector<uint64_t> versions;
  for (const v1::ModelVersionInfo& info : *infos) versions.push_back(info.version());
  EXPECT_THAT(versions, ElementsAre(256, 20, 3, 1));

  ModelBlob reserved;
  EXPECT_EQ(store->PutModel(reserved).code(), absl::StatusCode::kInvalidArgument);
  ModelBlob mismatched;
  mismatched.version = 5;
  mismatched.info.set_version(6);
  EXPECT_EQ(store->PutModel(mismatched).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TelemetryStoreTest, MetaRoundTripsAndReservedKeysAreRefused) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::optional<std::string>> absent = store->GetMeta("serving_version");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  ASSERT_TRUE(store->PutMeta("serving_version", "7").ok());
  ASSERT_TRUE(store->PutMeta("serving_version", "8").ok());
  EXPECT_EQ(store->PutMeta(kSchemaVersionKey, "99").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->PutMeta(kRunCountKey, "0").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->PutMeta("", "x").code(), absl::StatusCode::kInvalidArgument);
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetMeta("serving_version")->value_or(""), "8");
  // The schema stamp is readable (never writable) through the same interface.
  EXPECT_EQ(store->GetMeta(kSchemaVersionKey)->value_or(""), absl::StrCat(kSchemaVersion));
}

// Name, size and modification time of every file in a folder.
std::map<std::string, std::pair<uintmax_t, int64_t>> Listing(const std::string& dir) {
  std::map<std::string, std::pair<uintmax_t, int64_t>> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    struct stat st {};
    stat(entry.path().c_str(), &st);
    files[entry.path().filename().string()] = {static_cast<uintmax_t>(st.st_size),
                                               int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  }
  return files;
}

TEST_F(TelemetryStoreTest, NewerSchemaIsRefusedAndTheStoreIsLeftUntouched) {
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    v1::RunReport run = MakeRun("kept", 1);
    ASSERT_TRUE(store->AppendRuns({&run}).ok());
  }
  // Play a newer build: stamp schema 2 and add a column family this build has never heard of.
  {
    rocksdb::DBOptions db_options;
    std::vector<std::string> families;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(db_options, dir_, &families).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : families) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(db_options, dir_, descriptors, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* meta =
        handles[std::find(families.begin(), families.end(), kMetaCf) - families.begin()];
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), meta, kSchemaVersionKey, "2").ok());
    rocksdb::ColumnFamilyHandle* future = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "from_the_future", &future).ok());
    handles.push_back(future);
    for (rocksdb::ColumnFamilyHandle* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    ASSERT_TRUE(db->Close().ok());
  }
  const auto before = Listing(dir_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::unique_ptr<TelemetryStore>> store = TelemetryStore::Open(options_);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(store.status().message(), HasSubstr("store schema 2 is newer than this build's 1"));
    EXPECT_THAT(store.status().message(), HasSubstr(dir_));
  }
  // Not a byte rewritten: same files, same sizes, same modification times, and the stamp is still 2.
  EXPECT_EQ(Listing(dir_), before);
  rocksdb::DBOptions db_options;
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(db_options, dir_, &families).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(db_options, dir_, descriptors, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string stamp;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(),
                      handles[std::find(families.begin(), families.end(), kMetaCf) - families.begin()],
                      kSchemaVersionKey, &stamp)
                  .ok());
  EXPECT_EQ(stamp, "2");
  for (rocksdb::ColumnFamilyHandle* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
}

TEST_F(TelemetryStoreTest, FreshStoreIsStampedWithThisSchema) {
  { ASSERT_NE(OpenStore(), nullptr); }
  std::unique_ptr<TelemetryStore> store = OpenStore();  // reopening a stamped store of the same schema works
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetMeta(kSchemaVersionKey)->value_or(""), absl::StrCat(kSchemaVersion));
}

// Opens `dir` with plain RocksDB (every column family) and runs `fn` on it and its meta family.
void WithRawStore(const std::string& dir, bool read_only,
                  const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle*)>& fn) {
  rocksdb::DBOptions db_options;
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(db_options, dir, &families).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = read_only ? rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &handles, &raw)
                                : rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  fn(db.get(), handles[std::find(families.begin(), families.end(), kMetaCf) - families.begin()]);
  for (rocksdb::ColumnFamilyHandle* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  ASSERT_TRUE(db->Close().ok());
}

void WriteSchemaStamp(const std::string& dir, uint32_t version) {
  WithRawStore(dir, /*read_only=*/false, [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), meta, kSchemaVersionKey, absl::StrCat(version)).ok());
  });
}

std::string ReadSchemaStamp(const std::string& dir) {
  std::string stamp;
  WithRawStore(dir, /*read_only=*/true, [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta) {
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), meta, kSchemaVersionKey, &stamp).ok());
  });
  return stamp;
}

// A pass that makes the summaries in a new format and stops part way (here: its summary function throws after 4,500
// runs, once a first batch of them is written) leaves no stamp, so that an open under the old format makes them all
// again rather than trusting a mix.
TEST_F(TelemetryStoreTest, ASummaryPassStoppedPartWayLeavesNoStampOverMixedSummaries) {
  options_.run_summary = SummaryIn("v1");
  options_.run_summary_format = "v1";
  {
    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::vector<v1::RunReport> runs;
    for (int i = 0; i < 5000; ++i) runs.push_back(MakeRun(absl::StrCat("r", i), i));
    ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
  }
  StoreOptions v2 = options_;
  v2.run_summary_format = "v2";
  int made = 0;
  v2.run_summary = [&made](const v1::RunReport& r) {
    if (++made > 4500) throw std::runtime_error("stopped");
    return SummaryIn("v2")(r);
  };
  EXPECT_THROW((void)TelemetryStore::Open(v2), std::runtime_error);
  WithRawStore(dir_, /*read_only=*/true, [](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta) {
    std::string stamp;
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), meta, kRunSummaryFormatKey, &stamp).IsNotFound()) << stamp;
  });
  std::unique_ptr<TelemetryStore> store = OpenStore();  // v1 again: all made again
  ASSERT_NE(store, nullptr);
  std::map<std::string, std::string> got = Summaries(*store, 1, &made);
  EXPECT_EQ(made, 0);
  ASSERT_EQ(got.size(), 5000u);
  for (const auto& [id, summary] : got) EXPECT_EQ(summary.substr(0, 3), "v1:") << id;
}

// A store one schema older than this build, holding the run "kept".
class OlderSchemaTest : public TelemetryStoreTest {
 protected:
  static constexpr uint32_t kOlder = kSchemaVersion - 1;
  void SetUp() override {
    TelemetryStoreTest::SetUp();
    {
      std::unique_ptr<TelemetryStore> store = OpenStore();
      ASSERT_NE(store, nullptr);
      v1::RunReport run = MakeRun("kept", 1);
      ASSERT_TRUE(store->AppendRuns({&run}).ok());
    }
    WriteSchemaStamp(dir_, kOlder);
  }
};

TEST_F(OlderSchemaTest, WithoutAMigrationItIsRefusedByNameAndLeftUntouched) {
  const auto before = Listing(dir_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::unique_ptr<TelemetryStore>> store = OpenRocksDbStore(options_, nullptr, {});
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(store.status().message(),
                HasSubstr(absl::StrCat("store schema ", kOlder, " is older than this build's ", kSchemaVersion,
                                       " and no migration from schema ", kOlder, " to ", kSchemaVersion, " exists")));
    EXPECT_THAT(store.status().message(), HasSubstr(dir_));
  }
  EXPECT_EQ(Listing(dir_), before);
  EXPECT_EQ(ReadSchemaStamp(dir_), absl::StrCat(kOlder));
}

// The test migration: records in meta which run it saw, through the target's handles.
absl::Status RecordKeptRun(const SchemaMigrationTarget& target, rocksdb::WriteBatch* batch) {
  std::string value;
  rocksdb::Status s = target.db->Get(rocksdb::ReadOptions(), target.runs, "kept", &value);
  if (!s.ok()) return absl::InternalError(s.ToString());
  v1::RunReport run;
  if (!run.ParseFromString(value)) return absl::DataLossError("kept does not parse");
  return batch->Put(target.meta, "test_migration_saw", run.run_id()).ok() ? absl::OkStatus()
                                                                          : absl::InternalError("put");
}

absl::Status FailMigration(const SchemaMigrationTarget& target, rocksdb::WriteBatch* batch) {
  (void)batch->Put(target.meta, "half_done", "x");  // must not reach the store: the batch goes with the error
  return absl::InternalError("disk says no");
}

TEST_F(OlderSchemaTest, MigratesForwardOnOpenAndStampsTheNewSchema) {
  static constexpr SchemaMigration kSteps[] = {{kOlder, "test: record the kept run", &RecordKeptRun}};
  {
    absl::StatusOr<std::unique_ptr<TelemetryStore>> store = OpenRocksDbStore(options_, nullptr, kSteps);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->GetMeta(kSchemaVersionKey)->value_or(""), absl::StrCat(kSchemaVersion));
    EXPECT_EQ((*store)->GetMeta("test_migration_saw")->value_or(""), "kept");
    EXPECT_TRUE((*store)->GetRun("kept").ok());
    EXPECT_EQ((*store)->RunCount(), 1u);
  }
  EXPECT_EQ(ReadSchemaStamp(dir_), absl::StrCat(kSchemaVersion));
  // Migrated once: the production table (no step from kOlder) opens it now.
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetMeta("test_migration_saw")->value_or(""), "kept");
}

TEST_F(OlderSchemaTest, AFailedMigrationNamesItsStepAndKeepsTheOlderSchema) {
  static constexpr SchemaMigration kFailing[] = {{kOlder, "test: always fails", &FailMigration}};
  absl::StatusOr<std::unique_ptr<TelemetryStore>> store = OpenRocksDbStore(options_, nullptr, kFailing);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(store.status().message(), HasSubstr(absl::StrCat("from schema ", kOlder, " to ", kSchemaVersion)));
  EXPECT_THAT(store.status().message(), HasSubstr("test: always fails"));
  EXPECT_THAT(store.status().message(), HasSubstr("disk says no"));
  EXPECT_EQ(ReadSchemaStamp(dir_), absl::StrCat(kOlder));
  // The store is left as it was: a working step migrates it later.
  static constexpr SchemaMigration kSteps[] = {{kOlder, "test: record the kept run", &RecordKeptRun}};
  absl::StatusOr<std::unique_ptr<TelemetryStore>> retried = OpenRocksDbStore(options_, nullptr, kSteps);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ((*retried)->GetMeta("half_done")->value_or("absent"), "absent");
  EXPECT_EQ((*retried)->GetMeta(kSchemaVersionKey)->value_or(""), absl::StrCat(kSchemaVersion));
}

TEST_F(TelemetryStoreTest, OpenRefusesAnEmptyPathAndASecondOpenOfTheSameFolder) {
  StoreOptions no_path;
  EXPECT_EQ(TelemetryStore::Open(no_path).status().code(), absl::StatusCode::kInvalidArgument);
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  // RocksDB's LOCK file keeps a second writer out of the same folder.
  absl::StatusOr<std::unique_ptr<TelemetryStore>> second = TelemetryStore::Open(options_);
  EXPECT_FALSE(second.ok());
}

TEST_F(TelemetryStoreTest, ConcurrentOverlappingAppendsStoreEachRunOnce) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 6;
  constexpr int kBatches = 40;
  constexpr int kBatchSize = 25;
  constexpr int kDistinctIds = 500;  // far fewer than kThreads * kBatches * kBatchSize: heavy overlap
  std::vector<std::vector<int>> stored_by_thread(kThreads, std::vector<int>(kDistinctIds, 0));
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      for (int b = 0; b < kBatches; ++b) {
        std::vector<v1::RunReport> batch;
        std::vector<int> ids;
        for (int i = 0; i < kBatchSize; ++i) {
          ids.push_back(static_cast<int>(rng() % kDistinctIds));
          batch.push_back(MakeRun(absl::StrCat("id-", ids.back()), ids.back(), t));
        }
        absl::StatusOr<std::vector<AppendResult>> results = store->AppendRuns(Pointers(batch));
        if (!results.ok()) {
          ++errors;
          continue;
        }
        for (int i = 0; i < kBatchSize; ++i) {
          if ((*results)[i] == AppendResult::kStored) ++stored_by_thread[t][ids[i]];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(errors.load(), 0);

  std::set<std::string> scanned_ids;
  const std::vector<v1::RunReport> scanned = ScanAll(*store);
  for (const v1::RunReport& run : scanned) scanned_ids.insert(run.run_id());
  EXPECT_EQ(scanned_ids.size(), scanned.size());  // no run listed twice

  uint64_t total_stored = 0;
  for (int id = 0; id < kDistinctIds; ++id) {
    int times = 0;
    for (int t = 0; t < kThreads; ++t) times += stored_by_thread[t][id];
    const bool present = scanned_ids.count(absl::StrCat("id-", id)) == 1;
    // Exactly one kStored for every id that was sent (and so is present), none for an id never sent.
    EXPECT_EQ(times, present ? 1 : 0) << "id-" << id;
    total_stored += times;
  }
  EXPECT_EQ(store->RunCount(), total_stored);
  EXPECT_EQ(scanned.size(), total_stored);
  EXPECT_GT(total_stored, 400u);  // with 6000 draws from 500 ids, virtually all are sent
}

TEST_F(TelemetryStoreTest, ApproximateBytesGrowsWithDataAndFlushSucceeds) {
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t empty = store->ApproximateBytes();
  std::vector<v1::RunReport> runs;
  for (int i = 0; i < 2000; ++i) runs.push_back(MakeRun(absl::StrCat("bulk-", i), i));
  ASSERT_TRUE(store->AppendRuns(Pointers(runs)).ok());
  const uint64_t in_wal = store->ApproximateBytes();
  EXPECT_GT(in_wal, empty + 2000 * 40);  // each serialized run is over 40 bytes, and the WAL holds them all
  ASSERT_TRUE(store->Flush().ok());
  const uint64_t flushed = store->ApproximateBytes();
  EXPECT_GT(flushed, empty + 2000 * 10);  // now counted as SST bytes (compressed)
  EXPECT_LT(flushed, in_wal * 2);         // and not counted twice
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RunCount(), 2000u);
}

// ---------------------------------------------------------------------------------------------------------------
// Crash test: a child process appends until SIGKILLed at a random moment; every run it saw acknowledged must be
// there afterwards, exactly once, and the store must open.
// ---------------------------------------------------------------------------------------------------------------

std::vector<std::string> CompleteLines(const std::string& path) {
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = content.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(content.substr(start, end - start));
  }
  return lines;  // a line cut by the kill has no '\n' and is ignored
}

class TelemetryStoreCrashTest : public TelemetryStoreTest, public ::testing::WithParamInterface<bool> {};

TEST_P(TelemetryStoreCrashTest, KillNineAfterAcknowledgementLosesNothing) {
  const bool sync_writes = GetParam();
  const std::string ack_file = dir_ + ".acks";
  std::random_device seed_source;
  const unsigned seed = seed_source();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  std::set<std::string> acknowledged;

  for (int cycle = 0; cycle < 3; ++cycle) {
    std::filesystem::remove(ack_file);
    const std::string prefix = absl::StrCat("c", cycle);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // exec at once: the child must not inherit this process's RocksDB threads or locks.
      execl(ACCELSEL_STORAGE_CRASH_CHILD, ACCELSEL_STORAGE_CRASH_CHILD, dir_.c_str(), ack_file.c_str(),
            sync_writes ? "1" : "0", prefix.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait until the child is well into its appends, then kill it a random while later.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int status = 0;
    bool exited = false;
    while (CompleteLines(ack_file).size() < 100 && std::chrono::steady_clock::now() < deadline) {
      if (waitpid(child, &status, WNOHANG) == child) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!exited) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300000));
      ASSERT_EQ(kill(child, SIGKILL), 0);
      ASSERT_EQ(waitpid(child, &status, 0), child);
    }
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child ended on its own, status " << status;
    const std::vector<std::string> lines = CompleteLines(ack_file);
    ASSERT_GE(lines.size(), 100u);
    acknowledged.insert(lines.begin(), lines.end());

    std::unique_ptr<TelemetryStore> store = OpenStore();
    ASSERT_NE(store, nullptr) << "store does not open after SIGKILL in cycle " << cycle;
    for (const std::string& run_id : acknowledged) {
      ASSERT_TRUE(store->GetRun(run_id).ok()) << "acknowledged run " << run_id << " lost in cycle " << cycle;
    }
    std::set<std::string> scanned_ids;
    const std::vector<v1::RunReport> scanned = ScanAll(*store);
    for (const v1::RunReport& run : scanned) scanned_ids.insert(run.run_id());
    EXPECT_EQ(scanned_ids.size(), scanned.size()) << "a run is indexed twice";
    EXPECT_EQ(store->RunCount(), scanned.size()) << "the run counter disagrees with the stored runs";
    EXPECT_TRUE(std::includes(scanned_ids.begin(), scanned_ids.end(), acknowledged.begin(), acknowledged.end()));
    // Per kill, at most the one batch in flight (40 new runs) may be stored without having been acknowledged.
    EXPECT_LE(scanned.size(), acknowledged.size() + 40 * (cycle + 1));
  }
  std::filesystem::remove(ack_file);
}

INSTANTIATE_TEST_SUITE_P(SyncAndNoSync, TelemetryStoreCrashTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("SyncWrites") : std::string("NoSyncWrites");
                         });

// ---------------------------------------------------------------------------------------------------------------
// Write errors: WAL appends that fail on demand (FaultEnv), like a disk that has filled up.
// ---------------------------------------------------------------------------------------------------------------

TEST_F(TelemetryStoreTest, WriteErrorIsUnavailableAcknowledgesNothingAndRecovers) {
  testing::FaultEnv env;
  {
    absl::StatusOr<std::unique_ptr<TelemetryStore>> opened = OpenRocksDbStore(options_, &env);
    ASSERT_TRUE(opened.ok()) << opened.status();
    TelemetryStore& store = **opened;
    std::vector<v1::RunReport> before = {MakeRun("before", 1)};
    ASSERT_TRUE(store.AppendRuns(Pointers(before)).ok());

    env.fail_wal_appends = true;
    std::vector<v1::RunReport> during = {MakeRun("during-1", 2), MakeRun("during-2", 3)};
    absl::StatusOr<std::vector<AppendResult>> failed = store.AppendRuns(Pointers(during));
    EXPECT_GT(env.wal_failures.load(), 0) << "the fault was never hit: the test is not testing anything";
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
    EXPECT_THAT(failed.status().message(), HasSubstr(testing::kInjectedDiskFull));
    EXPECT_EQ(store.RunCount(), 1u);
    EXPECT_EQ(store.GetRun("during-1").status().code(), absl::StatusCode::kNotFound);
    // While the disk stays full, appends keep failing cleanly.
    EXPECT_EQ(store.AppendRuns(Pointers(during)).status().code(), absl::StatusCode::kUnavailable);

    env.fail_wal_appends = false;
    absl::StatusOr<std::vector<AppendResult>> retried = store.AppendRuns(Pointers(during));
    ASSERT_TRUE(retried.ok()) << retried.status();
    EXPECT_THAT(*retried, ElementsAre(AppendResult::kStored, AppendResult::kStored));
    EXPECT_EQ(store.RunCount(), 3u);
  }
  std::unique_ptr<TelemetryStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RunCount(), 3u);
  EXPECT_EQ(ScanAll(*store).size(), 3u);
  EXPECT_TRUE(store->GetRun("during-2").ok());
}

TEST_F(TelemetryStoreTest, ReadsDuringWriteErrorRecoveryReturnDataOrUnavailable) {
  testing::FaultEnv env;
  absl::StatusOr<std::unique_ptr<TelemetryStore>> opened = OpenRocksDbStore(options_, &env);
  ASSERT_TRUE(opened.ok()) << opened.status();
  TelemetryStore& store = **opened;
  std::vector<v1::RunReport> base;
  for (int i = 0; i < 100; ++i) base.push_back(MakeRun(absl::StrCat("base-", i), i));
  ASSERT_TRUE(store.AppendRuns(Pointers(base)).ok());

  // Readers hammer the store while a writer fails, and the store replaces its RocksDB instance underneath them.
  std::atomic<bool> stop{false};
  std::atomic<int> found{0};
  std::atomic<int> unavailable{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      for (int i = 0; !stop.load(); ++i) {
        absl::Status status;
        if (r == 0) {
          status = store.ScanRuns(INT64_MIN, [](const v1::RunReport&) { return true; });
        } else {
          status = store.GetRun(absl::StrCat("base-", i % 100)).status();
        }
        if (status.ok()) {
          ++found;
        } else if (status.code() == absl::StatusCode::kUnavailable) {
          ++unavailable;
        } else {
          ++wrong;
        }
      }
    });
  }
  int failed_appends = 0;
  for (int round = 0; round < 5; ++round) {
    env.fail_wal_appends = true;
    std::vector<v1::RunReport> lost = {MakeRun(absl::StrCat("lost-", round), 1000 + round)};
    if (!store.AppendRuns(Pointers(lost)).ok()) ++failed_appends;
    env.fail_wal_appends = false;
    std::vector<v1::RunReport> kept = {MakeRun(absl::StrCat("kept-", round), 2000 + round)};
    // The first append after the fault replaces the instance; readers may hold it up, so allow a few tries.
    absl::StatusOr<std::vector<AppendResult>> results;
    for (int attempt = 0; attempt < 20; ++attempt) {
      results = store.AppendRuns(Pointers(kept));
      if (results.ok()) break;
    }
    ASSERT_TRUE(results.ok()) << results.status();
    EXPECT_THAT(*results, ElementsAre(AppendResult::kStored));
  }
  stop = true;
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(failed_appends, 5);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(found.load(), 0);
  EXPECT_EQ(store.RunCount(), 105u);
  EXPECT_EQ(store.GetRun("lost-0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store.GetRun("kept-4").ok());
}

}  // namespace
}  // namespace accelsel::storage
