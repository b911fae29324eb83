// DecisionLog: every SelectAccelerator answer, recorded off the request path, joined at ingest with the run that
// answered it, and turned into live quality — Prometheus series per serving model version, a drift signal that
// wakes the trainer, and the windows that `accelsel quality` and the off-policy evaluation read.
//
// Requests only hand an event to a bounded queue (RecordDecision on the Select path, with the decision already encoded
// into its stored bytes in one allocation; RecordOutcomes on the ingest writer thread after a batch of runs is
// durable); a full queue drops the event and counts it, so logging never blocks a request and never touches a stored
// run. One writer thread takes the events in order and in batches (after the first event it waits up to kLinger for
// more, so it is woken per batch, not per request) — a decision is always taken before any report that echoes its id,
// because the id reached the node only after the decision was queued. It keeps the newest decisions' bytes in memory
// for joins (a join reads the few fields it needs out of the bytes, of a kept decision or of one read back from the
// store), stores a joined run as a small record of its own beside its decision (key: the decision id + "/o"; the
// decision is never rewritten), all in the store's `decisions` column family without fsync (a log, not a promise: a
// crash may lose what is queued), and applies the retention bounds by age and by bytes.
//
// Thread safety: RecordDecision and RecordOutcome(s) may be called from any number of threads at once; Flush and Stop
// from any thread (Stop is idempotent and called by the destructor). mu_ guards the queue and the counters that
// Flush waits on; everything else (the recent decisions, the per-version series, the drift window, the retention
// state) belongs to the writer thread alone. Quality() and ScanLoggedDecisions read the store on the calling thread.
// Ownership: the log owns its writer thread; it borrows the store and the metrics, which must outlive it.
#ifndef ACCELSEL_SERVER_DECISION_LOG_H_
#define ACCELSEL_SERVER_DECISION_LOG_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.pb.h"
#include "accelsel/v1/decision_log.pb.h"
#include "model/selector.h"
#include "model/types.h"
#include "server/metrics.h"
#include "server/options.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// Decision ids: "d1-" + 12 hex digits of the creation time in ms + "-" + 16 hex digits of randomness, so that keys
// sort by time (retention deletes a key range) and a report's id tells whether its decision could still be kept.
std::string MakeDecisionId(int64_t time_unix_ms, uint64_t random);
// The creation time of an id MakeDecisionId made; nullopt for any other shape.
std::optional<int64_t> DecisionIdTime(std::string_view id);
// The smallest key of decisions made at or after `time_unix_ms`.
std::string DecisionKeyAt(int64_t time_unix_ms);

// The measured value of `objective` in a run's metrics (cost from e2e latency and `price_per_hour`); nullopt when
// not measured or not positive.
std::optional<double> MeasuredObjective(const v1::RunMetrics& metrics, v1::Objective objective, double price_per_hour);

// Whether a logged candidate carries an estimate (a layer other than UNKNOWN and a positive, finite value).
bool HasLoggedEstimate(const v1::LoggedCandidate& candidate);

// One SelectAccelerator answer as the request thread has it, by reference: DecisionEvent encodes it there, in one
// allocation, so that nothing of the request outlives it.
struct DecisionRecord {
  std::string_view decision_id;  // made by MakeDecisionId
  int64_t time_unix_ms = 0;
  std::string_view node_id;
  uint64_t model_version = 0;
  uint64_t context_key = 0;
  v1::Objective objective = v1::OBJECTIVE_E2E_LATENCY;
  const v1::TaskContext* context = nullptr;      // null = none
  const v1::Constraints* constraints = nullptr;  // null = none
  // Ranked, first place first, each with its strategy; the first's selection_probability and explored are logged.
  std::span<const model::Recommendation> candidates;
  std::string_view replica_id;  // cluster mode: this replica (LoggedDecision.replica_id); empty otherwise
};
// The stored bytes of a decision: a serialized v1::LoggedDecision without its outcome, its candidates in the stored
// form (candidate_ids, candidate_numbers, candidate_layers).
std::string EncodeDecision(const DecisionRecord& record);
// Turns the stored form of a parsed decision's candidates into `candidates` (appended, in order) and clears it; a
// decision without them is left as it is. False when the stored fields do not fit together (a damaged record).
bool ExpandStoredCandidates(v1::LoggedDecision* decision);

// A decision as the log queues it and keeps the newest in memory: its stored bytes and the few fields the writer
// reads without parsing them.
struct DecisionEvent {
  explicit DecisionEvent(const DecisionRecord& record);
  // A decision from its stored bytes (another replica's, as the decision stream carries it); null when they do not
  // parse as one or carry no valid id.
  static std::unique_ptr<DecisionEvent> FromBytes(std::string bytes);
  DecisionEvent(const DecisionEvent&) = delete;
  DecisionEvent& operator=(const DecisionEvent&) = delete;

  std::string bytes;             // EncodeDecision's
  std::string_view decision_id;  // in `bytes` (never reallocated)
  std::string node_id;
  int64_t time_unix_ms = 0;
  uint64_t model_version = 0;
  bool explored = false;
  std::string replica_id;  // LoggedDecision.replica_id
  bool joined = false;     // writer thread: a run joined it

 private:
  DecisionEvent() = default;
};
// The key of the record of the run joined with decision `id`.
std::string OutcomeKey(std::string_view id);

// Calls `fn` for each decision logged in [from_ms, to_ms), newest first, with its joined run in `outcome` when one
// joined, until it returns false. Records that do not parse are skipped.
absl::Status ScanLoggedDecisions(storage::TelemetryStore* store, int64_t from_ms, int64_t to_ms,
                                 const std::function<bool(const v1::LoggedDecision&)>& fn);

// How a report's decision_id joined (accelsel_decision_joins_total{result}).
enum class JoinResult { kJoined, kUnknown, kExpired, kForeign, kRepeat };

class DecisionLog {
 public:
  // What the log needs from the rest of the service. All are called on the writer thread.
  struct Hooks {
    // The held-out evaluation of a model version (for the live-vs-holdout series and drift); nullopt if unknown.
    std::function<std::optional<v1::ModelEvaluation>(uint64_t version)> holdout;
    // The serving model version now (drift watches only it).
    std::function<uint64_t()> serving_version;
    // Drift detected on `version`: wake the trainer.
    std::function<void(uint64_t version, double window_mape, double holdout_mape)> on_drift;
    // This process's own decisions of each processed batch, as (decision id, stored bytes), once they are handed to
    // the store: cluster mode publishes them on the decision stream. Null = not called.
    std::function<void(std::vector<std::pair<std::string, std::string>>)> on_logged;
  };
  // The writer waits this long for a batch to gather (or kBatch events), so that it is woken per batch, not per
  // request.
  static constexpr absl::Duration kLinger = absl::Milliseconds(10);
  static constexpr size_t kBatch = 1024;

  // Reads the log's size and oldest record from the store and starts the writer thread (when enabled).
  DecisionLog(storage::TelemetryStore* store, Metrics* metrics, DecisionLogOptions options, Hooks hooks);
  ~DecisionLog();
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;

  bool enabled() const { return options_.enabled; }
  int64_t NowMs() const;

  // Queues a decision. Never blocks; false = dropped (queue full, or stopped, or disabled).
  bool RecordDecision(std::unique_ptr<DecisionEvent> decision) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues the joins of stored runs that carry a decision_id (the others are skipped), as one event: the ingest
  // writer hands over a whole stored batch at once. Never blocks; returns how many were queued (0 = dropped, when
  // the queue cannot take them all).
  size_t RecordOutcomes(const std::vector<const v1::RunReport*>& runs) ABSL_LOCKS_EXCLUDED(mu_);
  bool RecordOutcome(const v1::RunReport& run) ABSL_LOCKS_EXCLUDED(mu_) { return RecordOutcomes({&run}) == 1; }
  // Queues decisions other replicas logged (cluster mode: the decision stream's applier). Waits while the queue is
  // full rather than dropping them, so that a replica catching up on the stream is slowed, not thinned; false once
  // stopped. A decision the log holds already (delivered again) is skipped.
  bool RecordForeignDecisions(std::vector<std::unique_ptr<DecisionEvent>> decisions) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns once every event queued before the call is processed and written.
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);
  // Processes what is queued, then stops the writer.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Live quality over [now - window, now), overall, by version (newest first) and by node (highest MAPE first, at
  // most top_nodes). Reads at most `max_records` decisions (the newest) and says so in `truncated`. In cluster mode
  // (options.replica_id set) the log holds every replica's decisions: `replicas` and `replica_ids` say whose
  // decisions the window holds.
  absl::Status Quality(absl::Duration window, uint32_t top_nodes, v1::GetLiveQualityResponse* response,
                       size_t max_records = 1000000) const;

  // Join counts since start, by JoinResult (for tests and the quality answer).
  uint64_t joins(JoinResult result) const;
  // Reports waiting for their decision to arrive (cluster mode, options.join_wait).
  size_t waiting_joins() const { return waiting_count_.load(std::memory_order_relaxed); }

 private:
  // The joins of one stored batch: the runs' few fields, their ids back to back in one buffer (one allocation per
  // batch, not four per run).
  struct Outcomes {
    struct Run {
      uint32_t decision_id = 0, run_id = 0, node_id = 0, strategy_id = 0, end = 0;  // offsets into `chars`
      int64_t time_unix_ms = 0;
      v1::RunStatus status = v1::RUN_STATUS_UNSPECIFIED;
      v1::RunMetrics metrics;
    };
    std::string chars;
    std::vector<Run> runs;
    std::string_view View(uint32_t from, uint32_t to) const { return std::string_view(chars).substr(from, to - from); }
  };
  struct Event {
    std::unique_ptr<DecisionEvent> decision;  // or, when null, `outcomes`, or else `foreign`
    std::unique_ptr<Outcomes> outcomes;
    std::vector<std::unique_ptr<DecisionEvent>> foreign;
  };
  // What a join reads of a run: views into an Outcomes batch or into a Waiting run.
  struct RunFields {
    std::string_view decision_id, run_id, node_id, strategy_id;
    int64_t time_unix_ms = 0;
    v1::RunStatus status = v1::RUN_STATUS_UNSPECIFIED;
    const v1::RunMetrics* metrics = nullptr;
  };
  // A run whose decision this replica does not hold yet (cluster mode): it may still come on the decision stream.
  struct Waiting {
    std::string run_id, node_id, strategy_id;
    int64_t time_unix_ms = 0;
    v1::RunStatus status = v1::RUN_STATUS_UNSPECIFIED;
    v1::RunMetrics metrics;
    JoinResult never = JoinResult::kUnknown;  // what it counts as if its decision never comes
  };
  // A decision an outcome joins: one kept in memory, or one read back from the store (decision_log.cc).
  struct Joinable;
  class Live;  // per-version Prometheus series, the drift window (writer thread only)

  // Queues `event`, which stands for `items` decisions or joins against the capacity; `wait`: waits for room (an
  // event larger than the capacity goes in once the queue is empty) instead of refusing.
  bool Push(Event event, size_t items, bool wait = false) ABSL_LOCKS_EXCLUDED(mu_);
  void WriterLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void Process(std::deque<Event>& events);
  // Joins one run with its decision, or (`may_wait`, cluster mode) keeps it waiting for a decision not here yet.
  void JoinRun(const RunFields& run, int64_t now_ms, bool may_wait);
  // A decision arrived: joins the runs that waited for it.
  void JoinWaiting(const std::string& decision_id, int64_t now_ms);
  // Counts as unknown the runs that waited past their deadline (all of them with `all`).
  void ExpireWaiting(int64_t now_ms, bool all);
  // The decision a run joins, from memory or the store; classifies the join.
  JoinResult Resolve(std::string_view decision_id, std::string_view node_id, int64_t now_ms, Joinable* decision);
  // Joins a resolved run: the live figures, and its record.
  void Join(std::string_view decision_id, v1::LoggedOutcome outcome, const v1::RunMetrics& metrics, Joinable& decision,
            int64_t now_ms);
  void Remember(std::unique_ptr<DecisionEvent> decision);
  void Write();
  void ApplyRetention();
  void Count(JoinResult result);

  storage::TelemetryStore* const store_;  // not owned
  Metrics* const metrics_;                // not owned
  const DecisionLogOptions options_;
  const Hooks hooks_;

  mutable absl::Mutex mu_;
  std::deque<Event> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t queued_items_ ABSL_GUARDED_BY(mu_) = 0;  // decisions and joins in queue_ (the capacity's measure)
  uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;      // events accepted since start
  uint64_t processed_ ABSL_GUARDED_BY(mu_) = 0;   // events processed and written since start
  int flush_waiters_ ABSL_GUARDED_BY(mu_) = 0;    // Flush calls waiting: the writer does not linger for them
  std::atomic<uint64_t> join_counts_[5] = {};
  std::atomic<uint64_t> dropped_{0};  // events dropped since start
  std::atomic<size_t> waiting_count_{0};

  // Writer thread only.
  std::unique_ptr<Live> live_;
  // Keyed by a view of the event's own id (the event is on the heap and never moves).
  absl::flat_hash_map<std::string_view, std::unique_ptr<DecisionEvent>> recent_;
  std::deque<std::string_view> recent_order_;
  std::vector<std::pair<std::string, std::string>> batch_;
  // Decisions read back from the store and joined since the last Write: their outcome records are still in batch_,
  // so a second report for one of them in the same batch is a repeat.
  absl::flat_hash_set<std::string> joined_unwritten_;
  // Runs waiting for their decision, by decision id, and each id's deadline in the order they began to wait.
  absl::flat_hash_map<std::string, std::vector<Waiting>> waiting_;
  std::deque<std::pair<int64_t, std::string>> waiting_deadlines_;
  size_t waiting_runs_ = 0;
  size_t remembered_unwritten_ = 0;  // decisions remembered since the last Write
  int64_t pruned_until_ms_ = 0;      // creation time of the newest decision retention deleted; 0 = none
  // This process's decisions of the batch being processed, for Hooks::on_logged.
  std::vector<std::pair<std::string, std::string>> logged_;
  uint64_t bytes_ = 0;           // keys + values of the stored records
  int64_t oldest_ms_ = 0;        // creation time of the oldest stored record; 0 = none
  uint64_t dropped_logged_ = 0;  // drops already reported in a log line
  int64_t last_drop_log_ms_ = 0;
  std::thread writer_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_DECISION_LOG_H_
