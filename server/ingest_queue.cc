// Writer thread of the group commit.
#include "server/ingest_queue.h"

namespace accelsel::server {

IngestQueue::IngestQueue(storage::TelemetryStore* store, IngestOptions options, OnStored on_stored)
    : store_(store), options_(options), on_stored_(std::move(on_stored)) {
  writer_ = std::thread([this] { WriterLoop(); });
}

IngestQueue::~IngestQueue() { Stop(); }

void IngestQueue::Submit(v1::RunReport report, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      pending_.push_back(Item{std::move(report), std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("server is shutting down; resend this report"));
}

void IngestQueue::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

void IngestQueue::WriterLoop() {
  std::vector<Item> batch;
  std::vector<const v1::RunReport*> ptrs;
  std::vector<const v1::RunReport*> stored;
  for (;;) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](IngestQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) { return q->stopping_ || !q->pending_.empty(); },
          this));
      if (pending_.empty() && stopping_) return;
      while (!pending_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    ptrs.clear();
    for (const Item& item : batch) ptrs.push_back(&item.report);
    auto results = store_->AppendRuns(ptrs);
    if (!results.ok()) {
      for (Item& item : batch) item.done(results.status());
      continue;
    }
    stored.clear();
    for (size_t i = 0; i < batch.size(); ++i) {
      if ((*results)[i] == storage::AppendResult::kStored) stored.push_back(ptrs[i]);
    }
    if (on_stored_ && !stored.empty()) on_stored_(stored);
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done((*results)[i]);
  }
}

}  // namespace accelsel::server
