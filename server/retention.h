// RunRetention: deletes stored runs older than --run_retention, in the background, a bounded batch at a time.
//
// Deleted runs leave the store (and so the next retrain's training set and every later restart's observed
// statistics); the in-memory observed statistics keep their samples of them until the next restart, since they hold
// bounded reservoirs, not the runs.
//
// Thread safety: Start, Stop and PassForTest may be called from any thread; Stop is idempotent and called by the
// destructor. mu_ guards the stop flag. A pass runs on the worker thread (or the caller's, for PassForTest) and takes
// the store's write lock once per batch, so ingest interleaves with a long pass. Ownership: the worker owns its
// thread; it borrows the store, which must outlive it.
#ifndef ACCELSEL_SERVER_RETENTION_H_
#define ACCELSEL_SERVER_RETENTION_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

struct RetentionOptions {
  // Runs whose time_unix_ms is older than now - max_age are deleted. Must be > 0.
  absl::Duration max_age = absl::ZeroDuration();
  // Time between passes; the first pass runs at Start.
  absl::Duration interval = absl::Minutes(10);
  // Runs deleted per store batch (one hold of the store's write lock).
  size_t batch_runs = 1000;
};

class RunRetention {
 public:
  // on_pass(deleted, status) after every pass (metrics, log), on the worker thread.
  RunRetention(storage::TelemetryStore* store, RetentionOptions options,
               std::function<void(uint64_t deleted, const absl::Status& status)> on_pass);
  ~RunRetention();  // Stop()

  RunRetention(const RunRetention&) = delete;
  RunRetention& operator=(const RunRetention&) = delete;

  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the current pass after its batch and joins the thread.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // One pass as of `now`, on the calling thread: the runs it deleted. For tests; not while the worker runs.
  absl::StatusOr<uint64_t> PassForTest(absl::Time now) { return Pass(now); }

 private:
  absl::StatusOr<uint64_t> Pass(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  bool stopping() ABSL_LOCKS_EXCLUDED(mu_);

  storage::TelemetryStore* const store_;
  const RetentionOptions options_;
  const std::function<void(uint64_t, const absl::Status&)> on_pass_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_RETENTION_H_
