// Runs independent training jobs on a few threads: the boosters of one MetaModel head (final fit, interval and
// novelty folds, ranking head) read the same Dataset and write nothing shared, so they can be fitted at once.
// Each XGBoost booster keeps one thread of its own (XgbParams::nthread = 1); parallelism comes from training
// several boosters, which needs no OpenMP barrier (those spin badly on a busy machine, docs/BENCHMARKS.md).
// Threads are started by the caller's thread and so inherit its scheduling priority (the trainer's nice value).
#ifndef ACCELSEL_UTIL_JOB_POOL_H_
#define ACCELSEL_UTIL_JOB_POOL_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace accelsel::util {

// Runs every job, at most `threads` at a time, in the order given (a job starts when a thread is free). Returns
// the status of the first failed job in that order, or OK. With threads <= 1 the jobs run on the caller's thread.
inline absl::Status RunJobs(std::vector<std::function<absl::Status()>>& jobs, int threads) {
  std::vector<absl::Status> status(jobs.size());
  const size_t n = std::min(jobs.size(), static_cast<size_t>(std::max(threads, 1)));
  if (n <= 1) {
    for (size_t i = 0; i < jobs.size(); ++i) status[i] = jobs[i]();
  } else {
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < jobs.size(); i = next++) status[i] = jobs[i]();
    };
    std::vector<std::thread> pool;
    pool.reserve(n - 1);
    for (size_t t = 1; t < n; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
  }
  for (absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace accelsel::util

#endif  // ACCELSEL_UTIL_JOB_POOL_H_
