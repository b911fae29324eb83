// Test helper: an in-memory TelemetryStore whose writes can be held (to let a queue fill) or made to fail, for unit
// tests of the pieces in server/ that sit on a store (IngestQueue, Catalog).
#ifndef ACCELSEL_TESTS_SERVER_FAKE_STORE_H_
#define ACCELSEL_TESTS_SERVER_FAKE_STORE_H_

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/telemetry_store.h"

namespace accelsel::testing {

class FakeStore : public storage::TelemetryStore {
 public:
  // --- controls ---
  // While held, AppendRuns waits (after counting itself as waiting) until ReleaseAppends.
  void HoldAppends() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  void ReleaseAppends() {
    absl::MutexLock lock(&mu_);
    hold_ = false;
  }
  // Waits, at most `timeout`, until an AppendRuns call is waiting on the hold; false if none came.
  bool AwaitHeldAppend(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&waiting_), timeout);
  }
  void FailAppends(absl::Status status) {
    absl::MutexLock lock(&mu_);
    append_status_ = std::move(status);
  }
  void FailPuts(absl::Status status) {
    absl::MutexLock lock(&mu_);
    put_status_ = std::move(status);
  }
  // Run ids of every AppendRuns call so far, one vector per call.
  std::vector<std::vector<std::string>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  bool HasRun(const std::string& run_id) {
    absl::MutexLock lock(&mu_);
    return runs_.count(run_id) > 0;
  }
  size_t strategy_puts() {
    absl::MutexLock lock(&mu_);
    return strategy_puts_;
  }

  // --- TelemetryStore ---
  absl::StatusOr<std::vector<storage::AppendResult>> AppendRuns(
      const std::vector<const v1::RunReport*>& runs) override {
    absl::MutexLock lock(&mu_);
    waiting_ = true;
    mu_.Await(absl::Condition(
        +[](bool* hold) { return !*hold; }, &hold_));
    waiting_ = false;
    std::vector<std::string>& ids = batches_.emplace_back();
    for (const v1::RunReport* r : runs) ids.push_back(r->run_id());
    if (!append_status_.ok()) return append_status_;
    std::vector<storage::AppendResult> results;
    for (const v1::RunReport* r : runs) {
      const bool fresh = runs_.emplace(r->run_id(), *r).second;
      results.push_back(fresh ? storage::AppendResult::kStored : storage::AppendResult::kDuplicate);
    }
    return results;
  }
  // Records what each run came with (bytes, summary), by run id, then stores as AppendRuns(WithMeta).
  absl::StatusOr<std::vector<storage::AppendResult>> AppendPreparedRuns(const std::vector<PreparedRun>& runs,
                                                                        const std::string* meta_key,
                                                                        const std::string* meta_value) override {
    {
      absl::MutexLock lock(&mu_);
      for (const PreparedRun& r : runs) prepared_[r.run->run_id()] = {std::string(r.bytes), std::string(r.summary)};
    }
    return TelemetryStore::AppendPreparedRuns(runs, meta_key, meta_value);
  }
  // The bytes and summary the run with this id was last handed in with by AppendPreparedRuns ({} if never).
  std::pair<std::string, std::string> prepared(const std::string& run_id) {
    absl::MutexLock lock(&mu_);
    auto it = prepared_.find(run_id);
    return it == prepared_.end() ? std::pair<std::string, std::string>() : it->second;
  }
  absl::StatusOr<std::vector<storage::AppendResult>> AppendRunsWithMeta(const std::vector<const v1::RunReport*>& runs,
                                                                        const std::string& meta_key,
                                                                        const std::string& meta_value) override {
    auto results = AppendRuns(runs);
    if (results.ok()) {
      absl::MutexLock lock(&mu_);
      meta_[meta_key] = meta_value;
    }
    return results;
  }
  absl::StatusOr<v1::RunReport> GetRun(const std::string& run_id) override {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return absl::NotFoundError(run_id);
    return it->second;
  }
  absl::Status ScanRuns(int64_t, const std::function<bool(const v1::RunReport&)>&) override {
    return absl::UnimplementedError("FakeStore::ScanRuns");
  }
  uint64_t RunCount() override {
    absl::MutexLock lock(&mu_);
    return runs_.size();
  }
  uint64_t ApproximateBytes() override { return 0; }
  absl::Status PutStrategy(const v1::Strategy& strategy) override {
    absl::MutexLock lock(&mu_);
    if (!put_status_.ok()) return put_status_;
    ++strategy_puts_;
    strategies_[strategy.id()] = strategy;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<v1::Strategy>> ListStrategies() override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Strategy> out;
    for (const auto& [id, s] : strategies_) out.push_back(s);
    return out;
  }
  absl::Status PutModel(const storage::ModelBlob&) override { return absl::UnimplementedError("FakeStore::PutModel"); }
  absl::StatusOr<storage::ModelBlob> GetModel(uint64_t) override { return absl::NotFoundError("FakeStore::GetModel"); }
  absl::StatusOr<std::vector<v1::ModelVersionInfo>> ListModels() override {
    return std::vector<v1::ModelVersionInfo>();
  }
  absl::Status PutMeta(const std::string& key, const std::string& value) override {
    absl::MutexLock lock(&mu_);
    meta_[key] = value;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<std::string>> GetMeta(const std::string& key) override {
    absl::MutexLock lock(&mu_);
    auto it = meta_.find(key);
    return it == meta_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  absl::Status PutDecisions(const std::vector<std::pair<std::string, std::string>>&) override {
    return absl::UnimplementedError("FakeStore::PutDecisions");
  }
  absl::StatusOr<std::optional<std::string>> GetDecision(const std::string&) override {
    return std::optional<std::string>();
  }
  absl::Status ScanDecisions(const std::string&, const std::string&, bool,
                             const std::function<bool(std::string_view, std::string_view)>&) override {
    return absl::OkStatus();
  }
  absl::Status DeleteDecisions(const std::string&, const std::string&) override { return absl::OkStatus(); }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::StatusOr<uint64_t> Checkpoint(const std::string&) override {
    return absl::UnimplementedError("FakeStore has no checkpoint");
  }
  absl::StatusOr<uint64_t> DeleteRunsBefore(int64_t, size_t) override {
    return absl::UnimplementedError("FakeStore has no retention");
  }

 private:
  absl::Mutex mu_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status append_status_ ABSL_GUARDED_BY(mu_);
  absl::Status put_status_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::RunReport> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Strategy> strategies_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> meta_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<std::string, std::string>> prepared_ ABSL_GUARDED_BY(mu_);
  size_t strategy_puts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_SERVER_FAKE_STORE_H_
