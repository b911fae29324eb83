// IngestQueue: group commit for run reports. Streams hand over validated reports; one writer thread appends
// whatever is waiting as a single WriteBatch and then calls each report's completion. One batch serves many
// reports (and many streams), which is what makes acknowledging "only once durable" cheap.
#ifndef ACCELSEL_SERVER_INGEST_QUEUE_H_
#define ACCELSEL_SERVER_INGEST_QUEUE_H_

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "accelsel/v1/accelsel.pb.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

struct IngestOptions {
  // Reports per WriteBatch at most. Larger batches amortise the WAL sync further but delay the first ack.
  size_t max_batch = 1024;
};

class IngestQueue {
 public:
  using Done = std::function<void(absl::StatusOr<storage::AppendResult>)>;
  // Called on the writer thread with the reports just stored (not duplicates), after the write returned.
  using OnStored = std::function<void(const std::vector<const v1::RunReport*>&)>;

  IngestQueue(storage::TelemetryStore* store, IngestOptions options, OnStored on_stored);
  ~IngestQueue();

  // Never blocks on storage. `done` runs on the writer thread; it must not block. Memory is bounded by the
  // callers (each stream limits its reports in flight).
  void Submit(v1::RunReport report, Done done);
  // Finishes everything submitted so far, then stops the writer. Submit after Stop fails the report with
  // UNAVAILABLE.
  void Stop();

 private:
  struct Item {
    v1::RunReport report;
    Done done;
  };
  void WriterLoop();

  storage::TelemetryStore* store_;
  IngestOptions options_;
  OnStored on_stored_;
  absl::Mutex mu_;
  std::deque<Item> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_INGEST_QUEUE_H_
