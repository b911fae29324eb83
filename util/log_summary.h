// IntervalSummary: one log line per interval for an event that may happen thousands of times a second (a refused
// call, a dropped record), instead of one line each. It counts occurrences by key and, at the end of each interval
// in which any happened, writes
//   {"event":E, C:total, K+"s":distinct keys, "top_"+K:"key counted most", "top_"+K+"_"+C:its count,
//    K+"s_capped":bool, "interval_s":seconds, <constant fields>}
// with C = count_field and K = key_field (the key fields only when key_field is set), e.g. for the refusals of
// the rate limits: {"event":"rate_limited","refused":812,"nodes":3,"top_node":"node-7","top_node_refused":790,...}.
//
// Memory is bounded: at most max_keys keys are told apart per interval; occurrences of further keys count in the
// total only, and the line says K+"s_capped":true (so the distinct count and the top key are of the first max_keys).
//
// Thread safety: Add and Flush may be called from any threads at once. Each summary with a non-zero interval has
// one thread that sleeps between lines; the destructor writes what is pending and joins it.
#ifndef ACCELSEL_UTIL_LOG_SUMMARY_H_
#define ACCELSEL_UTIL_LOG_SUMMARY_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "util/log.h"

namespace accelsel::log {

struct IntervalSummaryOptions {
  Level level = Level::kWarn;
  std::string event;                  // the line's "event"
  std::string count_field = "count";  // name of the total
  std::string key_field;              // what the keys are ("node"); empty = keys are not counted
  size_t max_keys = 1000;             // keys told apart per interval
  // Written unchanged on every line, e.g. {"queue_capacity", 4096}.
  std::vector<std::pair<std::string, int64_t>> constant_fields;
  // Length of an interval: at most one line per interval, written at its end. 0 = no thread: lines are written
  // only by Flush (tests, or a caller with its own clock).
  absl::Duration interval = absl::Seconds(10);
};

class IntervalSummary {
 public:
  explicit IntervalSummary(IntervalSummaryOptions options);
  ~IntervalSummary();
  IntervalSummary(const IntervalSummary&) = delete;
  IntervalSummary& operator=(const IntervalSummary&) = delete;

  // Counts `n` occurrences under `key` (ignored when key_field is empty). Cheap: a lock and a hash lookup; nothing
  // when the summary's level is off.
  void Add(std::string_view key = {}, uint64_t n = 1) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes the line for what was counted since the last one, if anything was; returns whether it wrote.
  bool Flush() ABSL_LOCKS_EXCLUDED(mu_);
  // Lines written so far.
  uint64_t lines_written() const { return lines_written_.load(std::memory_order_relaxed); }

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const IntervalSummaryOptions options_;
  absl::Mutex mu_;
  uint64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  bool capped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, uint64_t> by_key_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> lines_written_{0};
  std::thread thread_;
};

}  // namespace accelsel::log

#endif  // ACCELSEL_UTIL_LOG_SUMMARY_H_
