#include "server/retention.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {
namespace {

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("ACCELSEL_TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/retention_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", getpid());
    std::filesystem::remove_all(dir_);
    storage::StoreOptions options;
    options.path = dir_;
    options.block_cache_mb = 8;
    options.write_buffer_mb = 4;
    auto store = storage::TelemetryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override {
    store_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // One run per day, `days` days back from now_ (0 = now).
  void StoreRunsDaysOld(int days) {
    std::vector<v1::RunReport> runs(days + 1);
    std::vector<const v1::RunReport*> pointers;
    for (int d = 0; d <= days; ++d) {
      runs[d].set_run_id(absl::StrCat("day-", d));
      runs[d].set_time_unix_ms(absl::ToUnixMillis(now_ - absl::Hours(24 * d)));
      pointers.push_back(&runs[d]);
    }
    ASSERT_TRUE(store_->AppendRuns(pointers).ok());
  }

  std::string dir_;
  std::unique_ptr<storage::TelemetryStore> store_;
  const absl::Time now_ = absl::Now();
};

TEST_F(RetentionTest, APassDeletesEveryRunOlderThanTheAgeInBatches) {
  StoreRunsDaysOld(9);  // 10 runs, 0..9 days old
  RunRetention retention(store_.get(), {.max_age = absl::Hours(24 * 5) - absl::Minutes(1), .batch_runs = 2}, {});
  absl::StatusOr<uint64_t> deleted = retention.PassForTest(now_);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 5u);  // 5..9 days old; several batches of 2
  EXPECT_EQ(store_->RunCount(), 5u);
  EXPECT_TRUE(store_->GetRun("day-4").ok());
  EXPECT_EQ(store_->GetRun("day-5").status().code(), absl::StatusCode::kNotFound);
  deleted = retention.PassForTest(now_);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 0u);
}

TEST_F(RetentionTest, TheWorkerPassesAtStartAndReportsEachPass) {
  StoreRunsDaysOld(3);
  absl::Mutex mu;
  uint64_t total = 0;
  int passes = 0;
  RunRetention retention(store_.get(), {.max_age = absl::Hours(36), .interval = absl::Hours(1), .batch_runs = 10},
                         [&](uint64_t deleted, const absl::Status& status) {
                           EXPECT_TRUE(status.ok()) << status;
                           absl::MutexLock lock(&mu);
                           total += deleted;
                           ++passes;
                         });
  retention.Start();
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                        +[](int* p) { return *p >= 1; }, &passes),
                                    absl::Seconds(30)));
    EXPECT_EQ(total, 2u);  // 2 and 3 days old
  }
  EXPECT_EQ(store_->RunCount(), 2u);
  retention.Stop();  // returns at once although the next pass is an hour away
}

}  // namespace
}  // namespace accelsel::server
