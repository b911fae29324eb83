// IngestQueue: group commit for run reports. Streams hand over validated reports; one writer thread appends
// whatever is waiting as a single WriteBatch and then hands each stream its reports of that batch back in one
// call. One batch serves many reports (and many streams), which is what makes acknowledging "only once durable"
// cheap; one completion per stream per batch (not per report) lets a stream write its acks as one burst.
//
// Thread safety: Submit may be called from any number of threads at once (the RPC threads of the ReportRun
// streams), also concurrently with Stop; Stop is idempotent and is also called by the destructor. mu_ guards the
// hand-over (pending_, stopping_); the batch being written (batch_, groups_, group_of_) belongs to the writer thread
// alone and is touched without a lock. Ownership: the queue owns its writer thread and, until they come back through
// IngestSink::OnCommitted, the submitted reports; it borrows `store` and every sink, which must outlive it (sinks:
// until their last report came back).
#ifndef ACCELSEL_SERVER_INGEST_QUEUE_H_
#define ACCELSEL_SERVER_INGEST_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "accelsel/v1/accelsel.pb.h"
#include "model/types.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

struct IngestOptions {
  // Reports per WriteBatch at most. Larger batches amortise the WAL sync further but delay the first ack.
  size_t max_batch = 1024;
};

// What the writer thread would otherwise make of a report, made by the thread that submits it (ServiceCore::Ingest),
// so that the one writer thread only writes: the run as the observed statistics read it, its stored bytes and its
// training summary (storage::TelemetryStore::AppendPreparedRuns).
struct ConvertedRun {
  model::RunRecord record;
  std::string bytes;
  std::string summary;
};

// One submitted report on its way through the group commit.
struct IngestItem {
  std::unique_ptr<v1::RunReport> report;  // handed back with the result, so the stream can reuse the message
  // Of `report`, or null (the writer makes what it needs). Handed back too, so that it is reused and freed on the
  // stream's threads, not on the writer's.
  std::unique_ptr<ConvertedRun> converted;
  uint64_t sequence = 0;  // the submitter's own number (a stream's report sequence)
  storage::AppendResult result = storage::AppendResult::kDuplicate;  // valid when the batch's status is OK
};

// The submitter of reports (a ReportRun stream). Must stay alive until every report it submitted came back.
class IngestSink {
 public:
  virtual ~IngestSink() = default;
  // Called once per committed batch with this sink's reports of that batch, in submission order, after the write
  // returned (with the configured sync). `status` not OK: none of `items` was stored. Runs on the writer thread
  // (or, after Stop, on the submitting thread); must not block. `items` may be moved from.
  virtual void OnCommitted(const absl::Status& status, std::vector<IngestItem>& items) = 0;
};

class IngestQueue {
 public:
  // Called on the writer thread with the reports just stored (not duplicates), after the write returned, and each
  // one's conversion (null where it was submitted without one).
  using OnStored =
      std::function<void(const std::vector<const v1::RunReport*>&, const std::vector<const model::RunRecord*>&)>;

  IngestQueue(storage::TelemetryStore* store, IngestOptions options, OnStored on_stored);
  ~IngestQueue();

  // Never blocks on storage. Memory is bounded by the callers (each stream limits its reports in flight).
  // `converted`: of `report`, or null.
  void Submit(IngestSink* sink, std::unique_ptr<v1::RunReport> report, uint64_t sequence,
              std::unique_ptr<ConvertedRun> converted = nullptr) ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes everything submitted so far, then stops the writer. Submit after Stop fails the report with
  // UNAVAILABLE.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    IngestSink* sink;
    IngestItem item;
  };
  struct Group {
    IngestSink* sink = nullptr;
    std::vector<IngestItem> items;
  };
  void WriterLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Hands every sink of the batch its items; `status` not OK = the batch was not stored. Writer thread, no lock
  // held (the sinks' callbacks take their own).
  void Complete(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  storage::TelemetryStore* const store_;  // not owned
  const IngestOptions options_;
  const OnStored on_stored_;
  absl::Mutex mu_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Writer thread only: the batch being committed, grouped by sink (reused across batches).
  std::vector<Pending> batch_;
  std::vector<Group> groups_;
  absl::flat_hash_map<IngestSink*, size_t> group_of_;
  std::thread writer_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_INGEST_QUEUE_H_
