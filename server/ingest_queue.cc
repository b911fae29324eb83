// Writer thread of the group commit.
#include "server/ingest_queue.h"

namespace accelsel::server {

IngestQueue::IngestQueue(storage::TelemetryStore* store, IngestOptions options, OnStored on_stored)
    : store_(store), options_(options), on_stored_(std::move(on_stored)) {
  writer_ = std::thread([this] { WriterLoop(); });
}

IngestQueue::~IngestQueue() { Stop(); }

void IngestQueue::Submit(IngestSink* sink, std::unique_ptr<v1::RunReport> report, uint64_t sequence,
                         std::unique_ptr<ConvertedRun> converted) {
  IngestItem item{std::move(report), std::move(converted), sequence};
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      pending_.push_back(Pending{sink, std::move(item)});
      return;
    }
  }
  std::vector<IngestItem> items;
  items.push_back(std::move(item));
  sink->OnCommitted(absl::UnavailableError("server is shutting down; resend this report"), items);
}

void IngestQueue::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

void IngestQueue::Complete(const absl::Status& status) {
  for (Group& g : groups_) g.items.clear();
  group_of_.clear();
  size_t used = 0;
  for (Pending& p : batch_) {
    auto [it, inserted] = group_of_.try_emplace(p.sink, used);
    if (inserted) {
      if (used == groups_.size()) groups_.emplace_back();
      groups_[used++].sink = p.sink;
    }
    groups_[it->second].items.push_back(std::move(p.item));
  }
  batch_.clear();
  for (size_t i = 0; i < used; ++i) groups_[i].sink->OnCommitted(status, groups_[i].items);
}

void IngestQueue::WriterLoop() {
  std::vector<storage::TelemetryStore::PreparedRun> runs;
  std::vector<const v1::RunReport*> stored;
  std::vector<const model::RunRecord*> records;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](IngestQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) { return q->stopping_ || !q->pending_.empty(); },
          this));
      if (pending_.empty() && stopping_) return;
      while (!pending_.empty() && batch_.size() < options_.max_batch) {
        batch_.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    runs.clear();
    for (const Pending& p : batch_) {
      storage::TelemetryStore::PreparedRun& r = runs.emplace_back();
      r.run = p.item.report.get();
      if (p.item.converted != nullptr) {
        r.bytes = p.item.converted->bytes;
        r.summary = p.item.converted->summary;
      }
    }
    auto results = store_->AppendPreparedRuns(runs, nullptr, nullptr);
    if (!results.ok()) {
      Complete(results.status());
      continue;
    }
    stored.clear();
    records.clear();
    for (size_t i = 0; i < batch_.size(); ++i) {
      batch_[i].item.result = (*results)[i];
      if ((*results)[i] != storage::AppendResult::kStored) continue;
      stored.push_back(runs[i].run);
      const ConvertedRun* converted = batch_[i].item.converted.get();
      records.push_back(converted != nullptr ? &converted->record : nullptr);
    }
    if (on_stored_ && !stored.empty()) on_stored_(stored, records);
    Complete(absl::OkStatus());
  }
}

}  // namespace accelsel::server
