#include "server/retention.h"

#include <utility>

#include "absl/status/status.h"

namespace accelsel::server {

RunRetention::RunRetention(storage::TelemetryStore* store, RetentionOptions options,
                           std::function<void(uint64_t, const absl::Status&)> on_pass)
    : store_(store), options_(options), on_pass_(std::move(on_pass)) {}

RunRetention::~RunRetention() { Stop(); }

void RunRetention::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void RunRetention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool RunRetention::stopping() {
  absl::MutexLock lock(&mu_);
  return stop_;
}

absl::StatusOr<uint64_t> RunRetention::Pass(absl::Time now) {
  const int64_t cutoff = absl::ToUnixMillis(now - options_.max_age);
  uint64_t deleted = 0;
  while (!stopping()) {
    absl::StatusOr<uint64_t> batch = store_->DeleteRunsBefore(cutoff, options_.batch_runs);
    if (!batch.ok()) return batch.status();
    deleted += *batch;
    if (*batch < options_.batch_runs) break;
  }
  return deleted;
}

void RunRetention::Loop() {
  while (true) {
    absl::StatusOr<uint64_t> deleted = Pass(absl::Now());
    if (on_pass_) on_pass_(deleted.ok() ? *deleted : 0, deleted.status());
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.interval);
    if (stop_) return;
  }
}

}  // namespace accelsel::server
