// The trainer's two-pass read (server/training_set.h) keeps exactly the runs, in the same order and restated the same
// way, as reading every run and applying the split, the distrust filter, the node-share thinning and the row cap to
// the whole list; on a real RocksDB store, with the runs' summaries made as they were stored (the server's store) and
// without any (a store written by an older build, read before it is opened with them).
#include "server/training_set.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/context_key.h"
#include "model/robust.h"
#include "model/row_cap.h"
#include "proto/convert.h"

namespace accelsel::server {
namespace {

bool HeldOutKey(uint64_t holdout_key) { return holdout_key % 4 == 0; }
bool HeldOut(const model::TaskContext& c) { return HeldOutKey(model::HoldoutContextKey(c)); }

// The parameter: whether the store makes the runs' summaries as it stores them.
class TrainingSetTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("ACCELSEL_TEST_TMPDIR");
    // Parameterised test names contain '/': keep the folder a direct child of the temp dir.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/training_set_", name, "_", getpid());
    std::filesystem::remove_all(dir_);
    storage::StoreOptions options;
    options.path = dir_;
    options.sync_writes = false;
    options.block_cache_mb = 8;
    options.write_buffer_mb = 4;
    if (GetParam()) UseTrainingSummaries(&options);
    auto store = storage::TelemetryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    StoreNetwork();
  }
  void TearDown() override {
    store_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // 30 contexts (batch 1..30; about a quarter held out), 4 strategies, six honest nodes, one node that floods three
  // contexts, and one distrusted node; report times shuffled, some tied. stored_: the runs with times >= 0.
  void StoreNetwork() {
    std::mt19937_64 rng(5);
    std::vector<v1::RunReport> runs;
    auto add = [&](const std::string& node, uint32_t batch, int strategy) {
      v1::RunReport r;
      r.set_run_id(absl::StrCat(node, "-", runs.size()));
      r.set_node_id(node);
      r.set_time_unix_ms(1'700'000'000'000 + static_cast<int64_t>(rng() % 5000));
      auto* c = r.mutable_context();
      c->mutable_model()->set_name("llama-3-8b");
      c->mutable_hardware()->set_accelerator("h100");
      c->mutable_hardware()->set_count(1);
      c->mutable_workload()->set_batch_size(batch);
      c->mutable_workload()->set_prompt_tokens(512);
      c->mutable_workload()->set_output_tokens(128);
      r.set_strategy_id(absl::StrCat("s", strategy));
      r.mutable_metrics()->set_e2e_latency_ms(100.0 + static_cast<double>(rng() % 1000));
      runs.push_back(std::move(r));
    };
    for (uint32_t batch = 1; batch <= 30; ++batch) {
      for (int node = 0; node < 6; ++node) {
        for (int strategy = 0; strategy < 4; ++strategy) {
          for (uint64_t k = rng() % 4; k < 4; ++k) add(absl::StrCat("honest", node), batch, strategy);
        }
      }
    }
    for (uint32_t batch : {2u, 3u, 5u}) {
      for (int i = 0; i < 300; ++i) add("flood", batch, i % 4);
    }
    for (uint32_t batch = 1; batch <= 30; batch += 3) add("liar", batch, 1);
    // Runs with negative times (validation refuses them; an older store may hold some): left out, as ScanRuns(0) does.
    for (uint32_t batch = 1; batch <= 30; batch += 6) {
      add("honest0", batch, 0);
      runs.back().set_time_unix_ms(-static_cast<int64_t>(batch));
    }
    // In three table files of disjoint id ranges, so that a read on several threads splits the store.
    std::sort(runs.begin(), runs.end(),
              [](const v1::RunReport& a, const v1::RunReport& b) { return a.run_id() < b.run_id(); });
    for (size_t chunk = 0; chunk < 3; ++chunk) {
      std::vector<const v1::RunReport*> pointers;
      for (size_t i = runs.size() * chunk / 3; i < runs.size() * (chunk + 1) / 3; ++i) pointers.push_back(&runs[i]);
      ASSERT_TRUE(store_->AppendRuns(pointers).ok());
      ASSERT_TRUE(store_->Flush().ok());
    }
    stored_ = static_cast<size_t>(
        std::count_if(runs.begin(), runs.end(), [](const v1::RunReport& r) { return r.time_unix_ms() >= 0; }));
  }

  TrainingSetOptions Options(size_t max_rows) const {
    TrainingSetOptions o;
    o.in_holdout = &HeldOutKey;
    o.distrusted.insert(model::ObservedStats::NodeHash("liar"));
    o.levels["s2"] = {{1'700'000'002'500, std::log(2.0)}};  // s2 twice as slow from the middle on
    o.max_rows = max_rows;
    return o;
  }

  // The same choice made on every run at once, as the trainer made it before it read in two passes.
  TrainingSet Reference(const TrainingSetOptions& o) const {
    TrainingSet ref;
    EXPECT_TRUE(store_
                    ->ScanRuns(0,
                               [&](const v1::RunReport& r) {
                                 model::RunRecord rec = FromProto(r);
                                 if (o.distrusted.contains(model::ObservedStats::NodeHash(rec.node_id))) return true;
                                 model::ObservedStats::ToBaseLevel(o.levels, &rec);
                                 (HeldOut(rec.context) ? ref.holdout : ref.train).push_back(std::move(rec));
                                 return true;
                               })
                    .ok());
    ref.train = model::ThinByNodeShare(std::move(ref.train));
    ref.holdout = model::ThinByNodeShare(std::move(ref.holdout));
    const auto [train_cap, holdout_cap] = SplitRowCap(ref.train.size(), ref.holdout.size(), o.max_rows);
    model::CapTrainingRows(&ref.train, train_cap);
    model::CapTrainingRows(&ref.holdout, holdout_cap);
    return ref;
  }

  // ReadTrainingSet on `threads` threads with `o`; a test failure unless it keeps the Reference's runs in its order
  // (nothing when the read fails).
  std::optional<TrainingSet> ReadAsTheReference(TrainingSetOptions o, size_t threads) const {
    o.scan_threads = threads;
    absl::StatusOr<TrainingSet> set = ReadTrainingSet(*store_, o);
    EXPECT_TRUE(set.ok()) << set.status();
    if (!set.ok()) return std::nullopt;
    const TrainingSet ref = Reference(o);
    ExpectSameRuns(set->train, ref.train);
    ExpectSameRuns(set->holdout, ref.holdout);
    return *std::move(set);
  }

  static void ExpectSameRuns(const std::vector<model::RunRecord>& got, const std::vector<model::RunRecord>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].run_id, want[i].run_id) << i;
      EXPECT_DOUBLE_EQ(got[i].metrics.e2e_latency_ms, want[i].metrics.e2e_latency_ms) << got[i].run_id;
    }
  }

  std::string dir_;
  std::unique_ptr<storage::TelemetryStore> store_;
  size_t stored_ = 0;
};

// Each test reads on one thread and on three: the same runs in the same order either way.
constexpr size_t kThreads[] = {1, 3};

TEST_P(TrainingSetTest, TheStoreSplitsForAReadOnSeveralThreads) {
  std::mutex mu;
  std::set<size_t> parts;
  ASSERT_TRUE(store_
                  ->ScanRunsInParts(3, nullptr,
                                    [&](size_t part, const v1::RunReport&) {
                                      std::lock_guard<std::mutex> lock(mu);
                                      parts.insert(part);
                                      return true;
                                    })
                  .ok());
  EXPECT_EQ(parts.size(), 3u);
}

TEST_P(TrainingSetTest, UncappedItKeepsWhatTheThinningOfEveryRunKeeps) {
  for (size_t threads : kThreads) {
    SCOPED_TRACE(absl::StrCat(threads, " threads"));
    const std::optional<TrainingSet> set = ReadAsTheReference(Options(0), threads);
    ASSERT_TRUE(set.has_value());
    EXPECT_EQ(set->scanned, stored_);
    EXPECT_EQ(set->distrusted, 10u);
    EXPECT_GT(set->thinned, 500u);  // most of the flood
    EXPECT_EQ(set->capped, 0u);
    EXPECT_EQ(set->scanned, set->distrusted + set->thinned + set->train.size() + set->holdout.size());
    ASSERT_FALSE(set->holdout.empty());
    for (const model::RunRecord& r : set->holdout) EXPECT_TRUE(HeldOut(r.context)) << r.run_id;
    for (const model::RunRecord& r : set->train) EXPECT_FALSE(HeldOut(r.context)) << r.run_id;
    for (const auto* side : {&set->train, &set->holdout}) {
      for (const model::RunRecord& r : *side) EXPECT_GE(r.time_unix_ms, 0) << r.run_id;
    }
    // Restated at the base level: an s2 run after the change is halved, one before it is not.
    bool before = false, after = false;
    for (const model::RunRecord& r : set->train) {
      if (r.strategy_id != "s2") continue;
      (r.time_unix_ms >= 1'700'000'002'500 ? after : before) = true;
    }
    EXPECT_TRUE(before && after);
  }
}

TEST_P(TrainingSetTest, CappedItKeepsWhatTheCapOfEveryRunKeepsOnBothSides) {
  const std::optional<TrainingSet> uncapped = ReadAsTheReference(Options(0), 1);
  ASSERT_TRUE(uncapped.has_value());
  const double held_out_share = static_cast<double>(uncapped->holdout.size()) /
                                static_cast<double>(uncapped->train.size() + uncapped->holdout.size());
  for (size_t max_rows : {20, 460, 1100}) {
    for (size_t threads : kThreads) {
      SCOPED_TRACE(absl::StrCat(max_rows, " rows, ", threads, " threads"));
      const std::optional<TrainingSet> set = ReadAsTheReference(Options(max_rows), threads);
      ASSERT_TRUE(set.has_value());
      // Both sides together, each near its share of what the thinning left.
      EXPECT_EQ(set->train.size() + set->holdout.size(), max_rows);
      EXPECT_NEAR(static_cast<double>(set->holdout.size()), held_out_share * static_cast<double>(max_rows), 0.51);
      EXPECT_GT(set->capped, 0u);
      EXPECT_EQ(set->scanned, set->distrusted + set->thinned + set->capped + set->train.size() + set->holdout.size());
    }
  }
}

TEST(SplitRowCapTest, EachSideGetsItsShareOfTheCapAtLeastOneAndNoCapWhenNotExceeded) {
  EXPECT_EQ(SplitRowCap(800, 200, 0), std::make_pair(size_t{0}, size_t{0}));
  EXPECT_EQ(SplitRowCap(800, 200, 1000), std::make_pair(size_t{0}, size_t{0}));
  EXPECT_EQ(SplitRowCap(800, 200, 500), std::make_pair(size_t{400}, size_t{100}));
  EXPECT_EQ(SplitRowCap(8'000'000, 2'000'000, 1'000'000), std::make_pair(size_t{800'000}, size_t{200'000}));
  EXPECT_EQ(SplitRowCap(2, 1, 2), std::make_pair(size_t{1}, size_t{1}));      // 0.67 held out rounds to 1
  EXPECT_EQ(SplitRowCap(1000, 1, 10), std::make_pair(size_t{9}, size_t{1}));  // 0.01 held out, but at least one
  EXPECT_EQ(SplitRowCap(0, 50, 10), std::make_pair(size_t{0}, size_t{10}));
  EXPECT_EQ(SplitRowCap(50, 0, 10), std::make_pair(size_t{10}, size_t{0}));
}

// A store whose summaries were made by something else (a format this build does not know, stamped under the name
// this build gives its own) is refused, not misread.
// The summary a caller makes from the run it converted anyway (the ingest paths) is the one the store would make
// from the report, for reports of every shape: strategy by id or attached, descriptors sparse or full, nodes, times.
TEST(TrainingSetSummaryTest, TheSummaryOfTheConvertedRunIsTheSummaryOfTheReport) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200; ++i) {
    v1::RunReport r;
    r.set_run_id(absl::StrCat("run-", i));
    r.set_node_id(absl::StrCat("node-", rng() % 7));
    r.set_time_unix_ms(static_cast<int64_t>(rng() % 100000));
    auto* c = r.mutable_context();
    c->mutable_model()->set_name(i % 3 == 0 ? "Llama-3-8B" : "mistral-7b");
    if (i % 2 == 0) c->mutable_model()->set_parameters_b(static_cast<double>(rng() % 70) + 0.5);
    c->mutable_hardware()->set_accelerator(i % 5 == 0 ? "H100" : "mi300x");
    c->mutable_hardware()->set_count(static_cast<uint32_t>(1 + rng() % 8));
    if (i % 4 == 1) c->mutable_hardware()->set_price_per_hour(2.5);
    c->mutable_workload()->set_batch_size(static_cast<uint32_t>(1 + rng() % 64));
    c->mutable_workload()->set_prompt_tokens(static_cast<uint32_t>(rng() % 4096));
    c->mutable_workload()->set_output_tokens(static_cast<uint32_t>(rng() % 1024));
    if (i % 3 == 2) {
      r.mutable_strategy()->set_id(absl::StrCat("attached-", i % 4));
    } else {
      r.set_strategy_id(absl::StrCat("s", rng() % 9));
    }
    r.mutable_metrics()->set_e2e_latency_ms(1.0 + static_cast<double>(rng() % 1000));
    const std::string from_report = TrainingSummaryOf(r);
    EXPECT_EQ(TrainingSummaryOfRecord(FromProto(r)), from_report) << r.ShortDebugString();
    EXPECT_EQ(from_report.size(), 32u);
  }
}

TEST(TrainingSetSummaryTest, AStoredSummaryOfAnotherShapeIsDataLoss) {
  const char* tmp = std::getenv("ACCELSEL_TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/training_set_other_summary_", getpid());
  std::filesystem::remove_all(dir);
  storage::StoreOptions options;
  options.path = dir;
  options.sync_writes = false;
  options.run_summary = [](const v1::RunReport&) { return std::string("short"); };
  options.run_summary_format = kTrainingSummaryFormat;
  {
    auto store = storage::TelemetryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    v1::RunReport r;
    r.set_run_id("r1");
    r.set_node_id("n");
    r.set_strategy_id("s");
    r.set_time_unix_ms(1000);
    ASSERT_TRUE((*store)->AppendRuns({&r}).ok());
    TrainingSetOptions o;
    o.in_holdout = &HeldOutKey;
    absl::StatusOr<TrainingSet> set = ReadTrainingSet(**store, o);
    EXPECT_EQ(set.status().code(), absl::StatusCode::kDataLoss) << set.status();
  }
  // Opened as the server opens it: under its own format the summaries are made again, and the read works.
  options.run_summary = &TrainingSummaryOf;
  options.run_summary_format = std::string(kTrainingSummaryFormat) + " (another)";
  {
    auto store = storage::TelemetryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    TrainingSetOptions o;
    o.in_holdout = &HeldOutKey;
    absl::StatusOr<TrainingSet> set = ReadTrainingSet(**store, o);
    ASSERT_TRUE(set.ok()) << set.status();
    EXPECT_EQ(set->scanned, 1u);
    EXPECT_EQ(set->train.size() + set->holdout.size(), 1u);
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Summaries, TrainingSetTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Stored" : "None"; });

}  // namespace
}  // namespace accelsel::server
