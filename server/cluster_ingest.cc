// Publisher and applier threads of cluster mode.
#include "server/cluster_ingest.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/convert.h"
#include "server/training_set.h"
#include "util/log.h"

namespace accelsel::server {
namespace {

// How long one batch of a store's own runs is offered to the stream again before the start gives up (a stream
// without quorum), and the pause between offers. Kept well inside the stream's duplicate window, so that a message
// that reached the stream after its offer timed out is dropped as a repeat when it is offered again.
constexpr absl::Duration kBringPatience = absl::Minutes(1);
constexpr absl::Duration kBringRetryPause = absl::Milliseconds(500);

// Publishes every run of `store` to the stream, `batch_size` at a time, each with its run id as message id (as a
// report from a node is published), and waits for the stream's acknowledgement of each; what is not acknowledged is
// offered again. Returns UNAVAILABLE when part of a batch was still refused kBringPatience after its first offer
// (plus at most one publish timeout): the store is untouched and still has no stream position, so the next start
// brings them again, and what reached the stream already is deduplicated by run id.
absl::Status BringStoredRuns(storage::TelemetryStore& store, cluster::RunStream& stream, const std::string& stream_name,
                             size_t batch_size) {
  const absl::Time started = absl::Now();
  const uint64_t stored = store.RunCount();
  uint64_t brought = 0;
  uint64_t duplicates = 0;
  uint64_t next_progress = 100000;
  std::vector<std::string> ids;
  std::vector<std::string> data;
  std::vector<cluster::PublishItem> items;
  std::vector<cluster::PublishOutcome> outcomes;
  const auto publish = [&]() -> absl::Status {
    const absl::Time give_up = absl::Now() + kBringPatience;
    while (!ids.empty()) {
      items.clear();
      for (size_t i = 0; i < ids.size(); ++i) items.push_back(cluster::PublishItem{ids[i], data[i]});
      stream.PublishBatch(items, &outcomes);
      size_t refused = 0;
      absl::Status last;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (outcomes[i].status.ok()) {
          ++brought;
          duplicates += outcomes[i].duplicate ? 1 : 0;
          continue;
        }
        last = outcomes[i].status;
        if (refused != i) {
          ids[refused] = std::move(ids[i]);
          data[refused] = std::move(data[i]);
        }
        ++refused;
      }
      ids.resize(refused);
      data.resize(refused);
      if (refused == 0) break;
      if (absl::Now() >= give_up) {
        return absl::UnavailableError(
            absl::StrCat("cluster mode: this store holds ", stored, " runs it never published to stream ", stream_name,
                         "; ", brought, " were brought before the stream refused ", refused, " of a batch for ",
                         absl::FormatDuration(kBringPatience), " (last: ", last.message(),
                         "). Nothing was lost: start again to bring the rest"));
      }
      absl::SleepFor(kBringRetryPause);
    }
    if (brought >= next_progress) {
      log::Info("cluster_runs_bringing", {{"brought", brought}, {"stored", stored}});
      next_progress = brought + 100000;
    }
    return absl::OkStatus();
  };
  absl::Status failed;
  absl::Status scan = store.ScanRunsUnordered(nullptr, [&](const v1::RunReport& r) {
    ids.push_back(r.run_id());
    if (!r.SerializeToString(&data.emplace_back())) {
      failed = absl::InternalError(absl::StrCat("cannot serialize stored run ", r.run_id()));
      return false;
    }
    if (ids.size() < batch_size) return true;
    failed = publish();
    return failed.ok();
  });
  if (!scan.ok()) return scan;
  if (failed.ok()) failed = publish();
  if (!failed.ok()) return failed;
  log::Info("cluster_runs_brought", {{"runs", brought},
                                     {"already_in_stream", duplicates},
                                     {"seconds", absl::ToDoubleSeconds(absl::Now() - started)}});
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClusterIngest>> ClusterIngest::Start(const ClusterOptions& options,
                                                                    storage::TelemetryStore* store, Metrics* metrics,
                                                                    IngestQueue::OnStored on_applied) {
  uint64_t applied = 0;
  auto stored = store->GetMeta(kClusterAppliedSequenceKey);
  if (!stored.ok()) return stored.status();
  if (stored->has_value() && !absl::SimpleAtoi(**stored, &applied)) {
    return absl::DataLossError(absl::StrCat("store meta ", kClusterAppliedSequenceKey, " is not a number: ", **stored));
  }
  auto stream = cluster::RunStream::Open(options.nats);
  if (!stream.ok()) return stream.status();
  // Asked before subscribing: whatever the stream held then is what this replica must hold before it is SERVING.
  auto bounds = (*stream)->State();
  if (!bounds.ok()) return bounds.status();
  uint64_t last = bounds->last;
  // Messages after this store's position that the stream no longer holds (its retention removed them): applying
  // what is left would leave this replica without them for good, so it does not start.
  if (last > applied && bounds->first > applied + 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("cluster mode: this store applied stream ", options.nats.stream, " up to sequence ", applied,
                     ", but the stream's oldest message is ", bounds->first, ": its retention removed ", applied + 1,
                     "..", bounds->first - 1,
                     " before this replica applied them. Restore an online backup of another replica "
                     "(accelsel admin backup) into --data_dir and start again (docs/SCALE.md, \"Retention\")"));
  }
  // A store that holds runs but never applied the stream (a single-process store started with --nats, a replica
  // seeded from --seed_csv) brings them first, so that every replica gets them; they come back to this store from
  // the stream as duplicates of what it holds. Catching up then includes them.
  if (!stored->has_value() && store->RunCount() > 0) {
    if (absl::Status st = BringStoredRuns(*store, **stream, options.nats.stream, options.max_batch); !st.ok()) {
      return st;
    }
    bounds = (*stream)->State();
    if (!bounds.ok()) return bounds.status();
    last = bounds->last;
  }
  if (absl::Status st = (*stream)->Subscribe(applied); !st.ok()) return st;
  log::Info("cluster_start", {{"stream", options.nats.stream},
                              {"subject", options.nats.subject},
                              {"replicas", static_cast<int64_t>(options.nats.replicas)},
                              {"applied_sequence", applied},
                              {"stream_first_sequence", bounds->first},
                              {"stream_last_sequence", last}});
  return std::unique_ptr<ClusterIngest>(
      new ClusterIngest(options, store, metrics, std::move(on_applied), *std::move(stream), applied, last));
}

ClusterIngest::ClusterIngest(const ClusterOptions& options, storage::TelemetryStore* store, Metrics* metrics,
                             IngestQueue::OnStored on_applied, std::unique_ptr<cluster::RunStream> stream,
                             uint64_t applied, uint64_t catch_up_sequence)
    : options_(options),
      store_(store),
      series_(metrics->EnableCluster()),
      on_applied_(std::move(on_applied)),
      stream_(std::move(stream)),
      applied_sequence_(applied),
      catch_up_sequence_(catch_up_sequence),
      started_(absl::Now()) {
  series_.applied_sequence->Set(static_cast<double>(applied));
  // A stream that was empty, or one that holds nothing this replica has not applied, leaves nothing to catch up.
  if (applied >= catch_up_sequence) MarkCaughtUp();
  publisher_ = std::thread([this] { PublishLoop(); });
  applier_ = std::thread([this] { ApplyLoop(); });
}

ClusterIngest::~ClusterIngest() { Stop(); }

bool ClusterIngest::caught_up() const {
  absl::MutexLock lock(&ready_mu_);
  return caught_up_;
}

void ClusterIngest::OnCaughtUp(std::function<void()> fn) {
  {
    absl::MutexLock lock(&ready_mu_);
    if (!caught_up_) {
      on_caught_up_ = std::move(fn);
      return;
    }
  }
  fn();
}

void ClusterIngest::MarkCaughtUp() {
  std::function<void()> fn;
  {
    absl::MutexLock lock(&ready_mu_);
    if (caught_up_) return;
    caught_up_ = true;
    fn = std::move(on_caught_up_);
  }
  log::Info("cluster_caught_up", {{"applied_sequence", applied_sequence()},
                                  {"stream_last_sequence", catch_up_sequence_},
                                  {"seconds", absl::ToDoubleSeconds(absl::Now() - started_)}});
  if (fn) fn();
}

void ClusterIngest::Submit(IngestSink* sink, std::unique_ptr<v1::RunReport> report, uint64_t sequence) {
  IngestItem item{std::move(report), nullptr, sequence};
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      pending_.push_back(Pending{sink, std::move(item), absl::OkStatus()});
      return;
    }
  }
  std::vector<IngestItem> items;
  items.push_back(std::move(item));
  sink->OnCommitted(absl::UnavailableError("server is shutting down; resend this report"), items);
}

void StopStreamThreads(std::thread& publisher, std::atomic<bool>& stop_applier, std::thread& applier,
                       std::unique_ptr<cluster::RunStream>& stream) {
  if (publisher.joinable()) publisher.join();
  stop_applier.store(true, std::memory_order_release);
  if (applier.joinable()) applier.join();
  stream.reset();
}

void ResubscribeUntilStopped(cluster::RunStream& stream, uint64_t after, const std::atomic<bool>& stop,
                             const char* event) {
  while (!stop.load(std::memory_order_acquire)) {
    absl::Status st = stream.Subscribe(after);
    if (st.ok()) return;
    log::Warn(event, {{"error", std::string(st.message())}, {"applied_sequence", after}});
    absl::SleepFor(absl::Milliseconds(500));
  }
}

void ClusterIngest::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  StopStreamThreads(publisher_, stop_applier_, applier_, stream_);
}

void ClusterIngest::Complete() {
  // Per sink, in submission order: acknowledged reports, then the ones to resend.
  struct Group {
    IngestSink* sink;
    std::vector<IngestItem> ok;
    std::vector<IngestItem> failed;
    absl::Status failure;
  };
  std::vector<Group> groups;
  absl::flat_hash_map<IngestSink*, size_t> group_of;
  double published = 0;
  double failed = 0;
  for (Pending& p : batch_) {
    auto [it, inserted] = group_of.try_emplace(p.sink, groups.size());
    if (inserted) groups.push_back(Group{p.sink, {}, {}, absl::OkStatus()});
    Group& g = groups[it->second];
    if (p.status.ok()) {
      g.ok.push_back(std::move(p.item));
      ++published;
    } else {
      if (g.failure.ok()) g.failure = p.status;
      g.failed.push_back(std::move(p.item));
      ++failed;
    }
  }
  batch_.clear();
  if (published > 0) series_.published->Increment(published);
  if (failed > 0) series_.publish_failures->Increment(failed);
  for (Group& g : groups) {
    if (!g.ok.empty()) g.sink->OnCommitted(absl::OkStatus(), g.ok);
    // Last: once its last report is back, a sink may be gone.
    if (!g.failed.empty()) g.sink->OnCommitted(g.failure, g.failed);
  }
}

void ClusterIngest::PublishLoop() {
  std::vector<std::string> data;
  std::vector<cluster::PublishItem> items;
  std::vector<cluster::PublishOutcome> outcomes;
  std::string last_error;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ClusterIngest* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) { return c->stopping_ || !c->pending_.empty(); },
          this));
      if (pending_.empty() && stopping_) return;
      while (!pending_.empty() && batch_.size() < options_.max_batch) {
        batch_.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    data.resize(batch_.size());
    items.clear();
    for (size_t i = 0; i < batch_.size(); ++i) {
      const v1::RunReport& r = *batch_[i].item.report;
      if (!r.SerializeToString(&data[i])) data[i].clear();
      items.push_back(cluster::PublishItem{r.run_id(), data[i]});
    }
    stream_->PublishBatch(items, &outcomes);
    size_t failures = 0;
    for (size_t i = 0; i < batch_.size(); ++i) {
      batch_[i].status = outcomes[i].status;
      if (outcomes[i].status.ok()) {
        // "Stored" here means: the stream holds it, durably and replicated; this replica applies it in turn.
        batch_[i].item.result =
            outcomes[i].duplicate ? storage::AppendResult::kDuplicate : storage::AppendResult::kStored;
      } else {
        ++failures;
        if (last_error != outcomes[i].status.message()) {
          last_error = std::string(outcomes[i].status.message());
          log::Warn("cluster_publish_failed", {{"error", last_error}, {"reports", batch_.size()}});
        }
      }
    }
    if (failures == 0) last_error.clear();
    Complete();
  }
}

void ClusterIngest::ApplyLoop() {
  std::vector<cluster::StreamMessage> messages;
  std::vector<v1::RunReport> reports;
  // Each applied run converted once, for its summary and for on_applied; stored with the stream's own bytes.
  std::vector<model::RunRecord> converted;
  std::vector<std::string> summaries;
  std::vector<storage::TelemetryStore::PreparedRun> runs;
  std::vector<const v1::RunReport*> stored;
  std::vector<const model::RunRecord*> records;
  std::string last_error;
  auto note_error = [&](const absl::Status& st, const char* event) {
    if (last_error != st.message()) {  // once per distinct error, not once per retry
      last_error = std::string(st.message());
      log::Warn(event, {{"error", last_error}, {"applied_sequence", applied_sequence()}});
    }
  };
  const std::string position_key = kClusterAppliedSequenceKey;
  absl::Time last_delivery = absl::Now();
  while (!stop_applier_.load(std::memory_order_acquire)) {
    absl::Status st = stream_->NextBatch(options_.max_batch, absl::Milliseconds(200), &messages);
    if (!st.ok()) {
      // Among them the library's "slow consumer" (its buffer overflowed while this replica applied a backlog): what
      // it dropped, flow-control requests included, would stall or skip the delivery. Start over after what is
      // applied.
      note_error(st, "cluster_consume_failed");
      absl::SleepFor(absl::Milliseconds(200));
      series_.redeliveries->Increment();
      Resubscribe(applied_sequence());
      last_delivery = absl::Now();
      continue;
    }
    if (messages.empty()) {
      // Nothing for a while: fine when the stream has nothing new, a stalled delivery when it has.
      if (absl::Now() - last_delivery > absl::Seconds(5)) {
        last_delivery = absl::Now();
        auto bounds = stream_->State();
        if (bounds.ok() && bounds->last > applied_sequence()) {
          series_.redeliveries->Increment();
          log::Warn("cluster_delivery_restarted",
                    {{"after_sequence", applied_sequence()}, {"stream_last_sequence", bounds->last}});
          Resubscribe(applied_sequence());
        }
      }
      continue;
    }
    last_delivery = absl::Now();
    uint64_t last = applied_sequence();
    runs.clear();
    if (reports.size() < messages.size()) reports.resize(messages.size());
    bool start_over = false;
    size_t taken = 0;
    for (size_t i = 0; i < messages.size(); ++i, ++taken) {
      const cluster::StreamMessage& m = messages[i];
      if (m.sequence <= last) continue;  // already applied
      if (m.sequence > last + 1) {
        auto bounds = stream_->State();
        if (!bounds.ok() || bounds->first <= last + 1) {
          // The stream still holds what is missing: the delivery dropped it (the client library's buffer was full
          // while this replica applied a backlog). Apply what came before, then start over after it.
          start_over = true;
          break;
        }
        // The stream's retention removed messages this replica had not applied yet (it was down or too slow for
        // longer than the retention): it will never hold them. Counted and logged; docs/SCALE.md, "Retention".
        series_.skipped->Increment(static_cast<double>(m.sequence - last - 1));
        log::Error("cluster_messages_lost_to_retention",
                   {{"after_sequence", last}, {"next_sequence", m.sequence}, {"count", m.sequence - last - 1}});
      }
      last = m.sequence;
      v1::RunReport& r = reports[i];
      if (!r.ParseFromString(m.data) || r.run_id().empty()) {
        // Not ours to judge twice: every replica skips the same message, so all stay the same.
        log::Warn("cluster_message_skipped", {{"sequence", m.sequence}, {"bytes", m.data.size()}});
        continue;
      }
      runs.push_back({&r, m.data, {}});
    }
    if (converted.size() < runs.size()) {
      converted.resize(runs.size());
      summaries.resize(runs.size());
    }
    for (size_t k = 0; k < runs.size(); ++k) {
      converted[k] = FromProto(*runs[k].run);
      summaries[k] = TrainingSummaryOfRecord(converted[k]);
      runs[k].summary = summaries[k];
    }
    if (start_over) {
      series_.redeliveries->Increment();
      log::Warn("cluster_delivery_restarted", {{"after_sequence", last}});
    }
    if (last == applied_sequence()) {
      if (start_over) Resubscribe(last);
      continue;
    }
    if (options_.before_apply) options_.before_apply();
    const std::string position = absl::StrCat(last);
    // A write error (disk full) is retried with the same messages: the position only moves with the runs.
    absl::StatusOr<std::vector<storage::AppendResult>> results;
    for (;;) {
      results = store_->AppendPreparedRuns(runs, &position_key, &position);
      if (results.ok() || stop_applier_.load(std::memory_order_acquire)) break;
      note_error(results.status(), "cluster_apply_failed");
      absl::SleepFor(absl::Seconds(1));
    }
    if (!results.ok()) return;
    last_error.clear();
    stored.clear();
    records.clear();
    for (size_t k = 0; k < runs.size(); ++k) {
      if ((*results)[k] != storage::AppendResult::kStored) continue;
      stored.push_back(runs[k].run);
      records.push_back(&converted[k]);
    }
    applied_sequence_.store(last, std::memory_order_release);
    series_.applied->Increment(static_cast<double>(taken));
    series_.applied_sequence->Set(static_cast<double>(last));
    series_.apply_lag->Set(static_cast<double>(messages[taken - 1].pending));
    if (on_applied_ && !stored.empty()) on_applied_(stored, records);
    if (last >= catch_up_sequence_) MarkCaughtUp();
    if (start_over) Resubscribe(last);
  }
}

void ClusterIngest::Resubscribe(uint64_t after) {
  ResubscribeUntilStopped(*stream_, after, stop_applier_, "cluster_consume_failed");
}

}  // namespace accelsel::server
