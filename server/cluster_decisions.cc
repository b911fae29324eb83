// Publisher and applier threads of the decision stream.
#include "server/cluster_decisions.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/cluster_ingest.h"
#include "util/log.h"

namespace accelsel::server {

cluster::RunStreamOptions DecisionStreamOptions(const ClusterOptions& cluster, const DecisionLogOptions& log) {
  cluster::RunStreamOptions o = cluster.nats;
  o.stream = absl::StrCat(cluster.nats.stream, "_DECISIONS");
  o.subject = absl::StrCat(cluster.nats.subject, ".decisions");
  o.max_age = log.max_age;
  o.max_bytes = static_cast<int64_t>(std::min<uint64_t>(log.max_bytes, uint64_t{1} << 62));
  o.pending_messages = std::min(cluster.nats.pending_messages, 1 << 16);
  return o;
}

absl::StatusOr<std::unique_ptr<ClusterDecisions>> ClusterDecisions::Start(const ClusterOptions& cluster,
                                                                          const DecisionLogOptions& log_options,
                                                                          std::string replica_id,
                                                                          storage::TelemetryStore* store,
                                                                          DecisionLog* log, Metrics* metrics) {
  uint64_t applied = 0;
  auto stored = store->GetMeta(kClusterDecisionSequenceKey);
  if (!stored.ok()) return stored.status();
  if (stored->has_value() && !absl::SimpleAtoi(**stored, &applied)) {
    return absl::DataLossError(
        absl::StrCat("store meta ", kClusterDecisionSequenceKey, " is not a number: ", **stored));
  }
  const cluster::RunStreamOptions options = DecisionStreamOptions(cluster, log_options);
  auto stream = cluster::RunStream::Open(options);
  if (!stream.ok()) return stream.status();
  // A position the stream's retention passed is no error here: the decisions it removed were past the log's own
  // retention too. The delivery starts at the oldest one it holds.
  if (absl::Status st = (*stream)->Subscribe(applied); !st.ok()) return st;
  log::Info("cluster_decisions_start", {{"stream", options.stream}, {"applied_sequence", applied}});
  return std::unique_ptr<ClusterDecisions>(new ClusterDecisions(
      cluster, std::move(replica_id), log_options.queue_capacity, store, log, metrics, *std::move(stream), applied));
}

ClusterDecisions::ClusterDecisions(const ClusterOptions& cluster, std::string replica_id, size_t queue_capacity,
                                   storage::TelemetryStore* store, DecisionLog* log, Metrics* metrics,
                                   std::unique_ptr<cluster::RunStream> stream, uint64_t applied)
    : replica_id_(std::move(replica_id)),
      max_batch_(cluster.max_batch),
      queue_capacity_(queue_capacity),
      store_(store),
      log_(log),
      series_(metrics->EnableCluster()),
      stream_(std::move(stream)),
      applied_(applied) {
  publisher_ = std::thread([this] { PublishLoop(); });
  applier_ = std::thread([this] { ApplyLoop(); });
}

ClusterDecisions::~ClusterDecisions() { Stop(); }

void ClusterDecisions::Publish(std::vector<std::pair<std::string, std::string>> decisions) {
  size_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    for (auto& d : decisions) {
      if (stopping_ || queue_.size() >= queue_capacity_) {
        ++dropped;
        continue;
      }
      queue_.push_back(std::move(d));
    }
  }
  if (dropped > 0) series_.decisions_not_published->Increment(static_cast<double>(dropped));
}

void ClusterDecisions::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  StopStreamThreads(publisher_, stop_applier_, applier_, stream_);
}

void ClusterDecisions::PublishLoop() {
  std::vector<std::pair<std::string, std::string>> batch;
  std::vector<cluster::PublishItem> items;
  std::vector<cluster::PublishOutcome> outcomes;
  std::string last_error;
  for (;;) {
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](ClusterDecisions* self)
                                    ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->stopping_ || !self->queue_.empty(); },
                               this),
                           absl::Seconds(1));
      batch.clear();
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stop = stopping_ && queue_.empty();
      if (stopping_ && !queue_.empty()) {
        // One last batch is published; the rest is dropped, so that a stop never waits on NATS for long.
        series_.decisions_not_published->Increment(static_cast<double>(queue_.size()));
        queue_.clear();
        stop = true;
      }
    }
    if (!batch.empty()) {
      items.clear();
      for (const auto& [id, bytes] : batch) items.push_back({id, bytes});
      stream_->PublishBatch(items, &outcomes);
      size_t ok = 0;
      for (const cluster::PublishOutcome& o : outcomes) {
        if (o.status.ok()) {
          ++ok;
        } else if (last_error != o.status.message()) {  // once per distinct error, not once per decision
          last_error = std::string(o.status.message());
          log::Warn("cluster_decisions_not_published", {{"error", last_error}});
        }
      }
      if (ok == outcomes.size()) last_error.clear();
      series_.decisions_published->Increment(static_cast<double>(ok));
      series_.decisions_not_published->Increment(static_cast<double>(outcomes.size() - ok));
    }
    if (stop) return;
  }
}

void ClusterDecisions::ApplyLoop() {
  std::vector<cluster::StreamMessage> messages;
  std::vector<std::unique_ptr<DecisionEvent>> foreign;
  std::string last_error;
  uint64_t stored_position = applied_;
  absl::Time last_store = absl::Now();
  absl::Time last_delivery = absl::Now();
  const auto start_over = [&](const char* why) {
    log::Warn("cluster_decisions_delivery_restarted", {{"after_sequence", applied_}, {"why", why}});
    series_.decision_redeliveries->Increment();
    ResubscribeUntilStopped(*stream_, applied_, stop_applier_, "cluster_decisions_consume_failed");
    last_delivery = absl::Now();
  };
  while (!stop_applier_.load(std::memory_order_acquire)) {
    absl::Status st = stream_->NextBatch(max_batch_, absl::Milliseconds(200), &messages);
    if (st.ok() && messages.empty()) {
      // Nothing for a while: fine when the stream has nothing new, a stalled delivery when it has.
      if (absl::Now() - last_delivery > absl::Seconds(5)) {
        last_delivery = absl::Now();
        if (auto bounds = stream_->State(); bounds.ok() && bounds->last > applied_) start_over("stalled");
      }
      continue;
    }
    last_delivery = absl::Now();
    if (!st.ok()) {
      // The client library dropped deliveries (its buffer overflowed while the log was slow): start over after what
      // was handed to the log.
      if (last_error != st.message()) {
        last_error = std::string(st.message());
        log::Warn("cluster_decisions_consume_failed", {{"error", last_error}, {"applied_sequence", applied_}});
      }
      absl::SleepFor(absl::Milliseconds(200));
      start_over("consume_failed");
      continue;
    }
    last_error.clear();
    foreign.clear();
    bool gap = false;
    for (cluster::StreamMessage& m : messages) {
      if (m.sequence <= applied_) continue;
      if (m.sequence > applied_ + 1) {
        // The delivery dropped messages the stream still holds (the client's buffer overflowed while the log was
        // slow): hand over what came before, then start over after it. Messages the stream's retention removed
        // are gone; their decisions were past the log's own retention too.
        if (auto bounds = stream_->State(); !bounds.ok() || bounds->first <= applied_ + 1) {
          gap = true;
          break;
        }
      }
      applied_ = m.sequence;
      std::unique_ptr<DecisionEvent> d = DecisionEvent::FromBytes(std::move(m.data));
      if (d == nullptr) {
        log::Warn("cluster_decision_skipped", {{"sequence", m.sequence}});
        continue;
      }
      if (d->replica_id == replica_id_) continue;  // this replica's own, logged when it was made
      foreign.push_back(std::move(d));
    }
    if (!foreign.empty()) {
      const size_t n = foreign.size();
      if (!log_->RecordForeignDecisions(std::move(foreign))) return;  // the log stopped
      series_.decisions_applied->Increment(static_cast<double>(n));
      foreign.clear();  // moved from: valid, emptied
    }
    if (gap) start_over("gap");
    if (applied_ != stored_position && absl::Now() - last_store >= absl::Seconds(1)) {
      // After the log wrote what came before it: a restart then starts after decisions the log holds.
      log_->Flush();
      StorePosition(applied_);
      stored_position = applied_;
      last_store = absl::Now();
    }
  }
  if (applied_ != stored_position) {
    log_->Flush();
    StorePosition(applied_);
  }
}

void ClusterDecisions::StorePosition(uint64_t sequence) {
  if (absl::Status st = store_->PutMeta(kClusterDecisionSequenceKey, absl::StrCat(sequence)); !st.ok()) {
    // Not fatal: a restart delivers more again, and the log skips what it holds.
    log::Warn("cluster_decisions_position_not_stored", {{"error", std::string(st.message())}});
  }
}

}  // namespace accelsel::server
