// Unit tests of IngestQueue (server/ingest_queue.h) on an in-memory store: group commit across sinks, per-sink
// submission order, the batch bound, completion only after the write returned, store errors, Stop and after Stop.
#include "server/ingest_queue.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/fake_store.h"

namespace accelsel::server {
namespace {

using ::accelsel::testing::FakeStore;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr absl::Duration kWait = absl::Seconds(30);  // bound of every wait; a pass takes milliseconds

// Records every completion it gets. `store`, when set, is checked for each stored report at completion time.
class RecordingSink : public IngestSink {
 public:
  explicit RecordingSink(FakeStore* store = nullptr) : store_(store) {}

  struct Completion {
    absl::Status status;
    std::vector<uint64_t> sequences;
    std::vector<storage::AppendResult> results;
    std::vector<std::string> run_ids;
    bool all_in_store_when_called = true;
  };

  void OnCommitted(const absl::Status& status, std::vector<IngestItem>& items) override {
    Completion c;
    c.status = status;
    for (IngestItem& item : items) {
      c.sequences.push_back(item.sequence);
      c.results.push_back(item.result);
      c.run_ids.push_back(item.report ? item.report->run_id() : "<no report>");
      if (store_ != nullptr && status.ok() && item.result == storage::AppendResult::kStored) {
        c.all_in_store_when_called = c.all_in_store_when_called && store_->HasRun(item.report->run_id());
      }
    }
    absl::MutexLock lock(&mu_);
    returned_ += items.size();
    completions_.push_back(std::move(c));
  }

  // Waits (bounded) until `n` reports came back; false on timeout.
  bool AwaitReturned(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return returned_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }
  std::vector<Completion> completions() {
    absl::MutexLock lock(&mu_);
    return completions_;
  }
  std::vector<uint64_t> AllSequences() {
    std::vector<uint64_t> out;
    for (const Completion& c : completions()) out.insert(out.end(), c.sequences.begin(), c.sequences.end());
    return out;
  }

 private:
  FakeStore* store_;
  absl::Mutex mu_;
  size_t returned_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Completion> completions_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<v1::RunReport> Report(const std::string& run_id) {
  auto r = std::make_unique<v1::RunReport>();
  r->set_run_id(run_id);
  return r;
}

TEST(IngestQueueTest, ReportsComeBackStoredOrDuplicateInSubmissionOrderAfterTheWrite) {
  FakeStore store;
  std::vector<std::string> stored_ids;
  absl::Mutex stored_mu;
  IngestQueue queue(&store, IngestOptions(),
                    [&](const std::vector<const v1::RunReport*>& stored, const std::vector<const model::RunRecord*>&) {
                      absl::MutexLock lock(&stored_mu);
                      for (const v1::RunReport* r : stored) stored_ids.push_back(r->run_id());
                    });
  RecordingSink sink(&store);
  queue.Submit(&sink, Report("a"), 10);
  queue.Submit(&sink, Report("b"), 11);
  queue.Submit(&sink, Report("a"), 12);  // same run_id again: a duplicate, still acknowledged
  ASSERT_TRUE(sink.AwaitReturned(3));
  EXPECT_THAT(sink.AllSequences(), ElementsAre(10, 11, 12));
  std::vector<storage::AppendResult> results;
  for (const auto& c : sink.completions()) {
    EXPECT_TRUE(c.status.ok()) << c.status;
    EXPECT_TRUE(c.all_in_store_when_called);  // OnCommitted only after the write returned
    results.insert(results.end(), c.results.begin(), c.results.end());
  }
  EXPECT_THAT(results, ElementsAre(storage::AppendResult::kStored, storage::AppendResult::kStored,
                                   storage::AppendResult::kDuplicate));
  queue.Stop();  // joins the writer: on_stored has run for every batch
  absl::MutexLock lock(&stored_mu);
  EXPECT_THAT(stored_ids, ElementsAre("a", "b"));  // duplicates are not "stored"
}

// A sink that keeps what comes back with each report: whether its conversion did, and where it was.
class KeepingSink : public IngestSink {
 public:
  void OnCommitted(const absl::Status&, std::vector<IngestItem>& items) override {
    absl::MutexLock lock(&mu_);
    for (IngestItem& item : items) back_.push_back(std::move(item));
  }
  bool AwaitReturned(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return back_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }
  std::vector<IngestItem> Take() {
    absl::MutexLock lock(&mu_);
    return std::move(back_);
  }

 private:
  absl::Mutex mu_;
  std::vector<IngestItem> back_ ABSL_GUARDED_BY(mu_);
};

TEST(IngestQueueTest, AConversionMadeBySubmitterReachesTheStoreAndOnStoredAndComesBackToItsSink) {
  FakeStore store;
  absl::Mutex mu;
  std::vector<std::string> record_ids;  // run_id of each record on_stored got ("-" for none)
  IngestQueue queue(
      &store, IngestOptions(),
      [&](const std::vector<const v1::RunReport*>& stored, const std::vector<const model::RunRecord*>& records) {
        absl::MutexLock lock(&mu);
        ASSERT_EQ(records.size(), stored.size());
        for (const model::RunRecord* r : records) record_ids.push_back(r != nullptr ? r->run_id : "-");
      });
  KeepingSink sink;
  auto converted = std::make_unique<ConvertedRun>();
  converted->record.run_id = "with";
  converted->bytes = "the bytes";
  converted->summary = "the summary";
  const ConvertedRun* handed = converted.get();
  queue.Submit(&sink, Report("with"), 1, std::move(converted));
  queue.Submit(&sink, Report("without"), 2);
  ASSERT_TRUE(sink.AwaitReturned(2));
  queue.Stop();
  const std::vector<IngestItem> back = sink.Take();
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].converted.get(), handed);  // the same object, for the sink to reuse
  EXPECT_EQ(back[1].converted, nullptr);
  EXPECT_EQ(store.prepared("with"), std::make_pair(std::string("the bytes"), std::string("the summary")));
  EXPECT_EQ(store.prepared("without"), std::make_pair(std::string(), std::string()));
  absl::MutexLock lock(&mu);
  EXPECT_THAT(record_ids, ElementsAre("with", "-"));
}

TEST(IngestQueueTest, WaitingReportsOfManySinksShareOneWriteAndEachSinkGetsOneCallPerBatch) {
  FakeStore store;
  IngestQueue queue(&store, IngestOptions(), nullptr);
  RecordingSink first, second;
  store.HoldAppends();
  queue.Submit(&first, Report("warm-up"), 0);
  ASSERT_TRUE(store.AwaitHeldAppend(kWait));  // the writer is inside a write; what follows waits behind it
  for (uint64_t i = 1; i <= 5; ++i) {
    queue.Submit(&first, Report(absl::StrCat("f", i)), i);
    queue.Submit(&second, Report(absl::StrCat("s", i)), 100 + i);
  }
  store.ReleaseAppends();
  ASSERT_TRUE(first.AwaitReturned(6));
  ASSERT_TRUE(second.AwaitReturned(5));
  const auto batches = store.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_THAT(batches[0], ElementsAre("warm-up"));
  EXPECT_THAT(batches[1], ElementsAre("f1", "s1", "f2", "s2", "f3", "s3", "f4", "s4", "f5", "s5"));
  const auto f = first.completions();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_THAT(f[1].sequences, ElementsAre(1, 2, 3, 4, 5));
  const auto s = second.completions();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_THAT(s[0].sequences, ElementsAre(101, 102, 103, 104, 105));
}

TEST(IngestQueueTest, ABatchHoldsAtMostMaxBatchReports) {
  FakeStore store;
  IngestOptions options;
  options.max_batch = 3;
  IngestQueue queue(&store, options, nullptr);
  RecordingSink sink;
  store.HoldAppends();
  queue.Submit(&sink, Report("r0"), 0);
  ASSERT_TRUE(store.AwaitHeldAppend(kWait));
  for (uint64_t i = 1; i <= 10; ++i) queue.Submit(&sink, Report(absl::StrCat("r", i)), i);
  store.ReleaseAppends();
  ASSERT_TRUE(sink.AwaitReturned(11));
  std::vector<std::string> written;
  for (const auto& batch : store.batches()) {
    EXPECT_LE(batch.size(), 3u);
    written.insert(written.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(store.batches().size(), 5u);  // 1, then 3 + 3 + 3 + 1
  std::vector<std::string> expected;
  for (int i = 0; i <= 10; ++i) expected.push_back(absl::StrCat("r", i));
  EXPECT_THAT(written, ElementsAreArray(expected));
  EXPECT_THAT(sink.AllSequences(), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
}

TEST(IngestQueueTest, AFailedWriteFailsEveryReportOfTheBatchAndStoresNothing) {
  FakeStore store;
  int on_stored_calls = 0;
  IngestQueue queue(&store, IngestOptions(),
                    [&](const std::vector<const v1::RunReport*>&, const std::vector<const model::RunRecord*>&) {
                      ++on_stored_calls;
                    });
  store.FailAppends(absl::UnavailableError("disk full"));
  RecordingSink one, two;
  store.HoldAppends();
  queue.Submit(&one, Report("x"), 1);
  ASSERT_TRUE(store.AwaitHeldAppend(kWait));
  queue.Submit(&one, Report("y"), 2);
  queue.Submit(&two, Report("z"), 3);
  store.ReleaseAppends();
  ASSERT_TRUE(one.AwaitReturned(2));
  ASSERT_TRUE(two.AwaitReturned(1));
  for (RecordingSink* sink : {&one, &two}) {
    for (const auto& c : sink->completions()) {
      EXPECT_EQ(c.status.code(), absl::StatusCode::kUnavailable);
      EXPECT_THAT(c.status.message(), ::testing::HasSubstr("disk full"));
      for (const std::string& id : c.run_ids) EXPECT_NE(id, "<no report>");  // the report comes back for reuse
    }
  }
  EXPECT_EQ(store.RunCount(), 0u);
  // The queue goes on: the next write succeeds.
  store.FailAppends(absl::OkStatus());
  queue.Submit(&two, Report("w"), 4);
  ASSERT_TRUE(two.AwaitReturned(2));
  EXPECT_TRUE(two.completions().back().status.ok());
  queue.Stop();
  EXPECT_EQ(on_stored_calls, 1);
}

TEST(IngestQueueTest, StopFinishesWhatWasSubmittedAndLaterSubmitsFailAtOnce) {
  FakeStore store;
  auto queue = std::make_unique<IngestQueue>(&store, IngestOptions(), nullptr);
  RecordingSink sink;
  store.HoldAppends();
  queue->Submit(&sink, Report("first"), 1);
  ASSERT_TRUE(store.AwaitHeldAppend(kWait));
  queue->Submit(&sink, Report("second"), 2);
  std::thread stopper([&] { queue->Stop(); });
  // Stop waits for the held write and for "second"; releasing lets both finish.
  store.ReleaseAppends();
  stopper.join();
  const auto done = sink.completions();
  ASSERT_EQ(sink.AllSequences(), (std::vector<uint64_t>{1, 2}));
  for (const auto& c : done) EXPECT_TRUE(c.status.ok()) << c.status;
  EXPECT_TRUE(store.HasRun("second"));

  // After Stop: failed with UNAVAILABLE on the submitting thread, before Submit returns; nothing written.
  const size_t writes = store.batches().size();
  queue->Submit(&sink, Report("late"), 3);
  const auto after = sink.completions();
  ASSERT_EQ(after.size(), done.size() + 1);
  EXPECT_EQ(after.back().status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(after.back().sequences, ElementsAre(3));
  EXPECT_THAT(after.back().run_ids, ElementsAre("late"));
  EXPECT_EQ(store.batches().size(), writes);
  queue->Stop();  // idempotent
  queue.reset();  // and the destructor stops again
  EXPECT_FALSE(store.HasRun("late"));
}

TEST(IngestQueueTest, ConcurrentSubmittersEachGetAllTheirReportsBackInOrder) {
  FakeStore store;
  IngestOptions options;
  options.max_batch = 7;
  IngestQueue queue(&store, options, nullptr);
  constexpr int kThreads = 4;
  constexpr uint64_t kPerThread = 300;
  std::vector<std::unique_ptr<RecordingSink>> sinks;
  for (int t = 0; t < kThreads; ++t) sinks.push_back(std::make_unique<RecordingSink>());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPerThread; ++i) queue.Submit(sinks[t].get(), Report(absl::StrCat(t, "-", i)), i);
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(sinks[t]->AwaitReturned(kPerThread));
    std::vector<uint64_t> expected(kPerThread);
    for (uint64_t i = 0; i < kPerThread; ++i) expected[i] = i;
    EXPECT_EQ(sinks[t]->AllSequences(), expected) << "sink " << t;
  }
  EXPECT_EQ(store.RunCount(), kThreads * kPerThread);
}

}  // namespace
}  // namespace accelsel::server
