// Progress of long work (imports, evaluations, simulations, a blocking server call) for a person at a terminal:
// one line on stderr, redrawn in place with '\r' at most a few times per second, and a final line ending in a
// newline ("…, done in mm:ss" after Finish, "…, failed after mm:ss" after Fail):
//   import: 1200/4772 (25%) 812/s, ETA 00:04      (total known)
//   netsim: 1200 812/s                            (total unknown)
//   retrain: | 00:12 elapsed                      (Ticker without counts: a blocking call)
// It is shown only where stderr is a terminal, so piped or redirected runs (and their --json on stdout) stay
// exactly as they were. ACCELSEL_PROGRESS=1 or 0 forces it on or off (tests, CI logs); so does Mode::kOn/kOff.
//
// Thread safety: Update, Add, SetTotal, Finish, Fail may be called from any thread at once. A disabled Progress costs
// one branch per call; an enabled one one clock read per call and a redraw only when `interval` has passed.
#ifndef ACCELSEL_UTIL_PROGRESS_H_
#define ACCELSEL_UTIL_PROGRESS_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace accelsel {

struct ProgressOptions {
  enum class Mode { kAuto, kOn, kOff };
  // kAuto: ACCELSEL_PROGRESS=1/0 when set, else whether stderr (STDERR_FILENO) is a terminal.
  Mode mode = Mode::kAuto;
  std::ostream* out = nullptr;  // where the line goes when enabled; nullptr: std::cerr
  absl::Duration interval = absl::Milliseconds(250);
  std::function<absl::Time()> now;  // the clock; empty: absl::Now (tests pass a fake one)
};

// Whether a Progress with `mode` draws: the rule of ProgressOptions::Mode.
bool ProgressEnabled(ProgressOptions::Mode mode);

// "label: done/total (pct%) rate/s, ETA mm:ss" when total > 0, else "label: done rate/s". `elapsed` gives the
// rate (none before any time has passed) and the ETA (none until something is done, nor without `eta`: a final
// line has no time left).
std::string FormatProgress(const std::string& label, int64_t done, int64_t total, absl::Duration elapsed,
                           bool eta = true);

// mm:ss, or h:mm:ss from an hour on.
std::string FormatClock(absl::Duration d);

class Progress {
 public:
  // total <= 0: unknown.
  Progress(std::string label, int64_t total, ProgressOptions options = {});
  // Fail() unless Finish() or Fail() came first: a Progress left without either was abandoned on an error path
  // (an early return), and its line must not claim the work was done.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool enabled() const { return enabled_; }

  void Update(int64_t done);  // the count so far
  void Add(int64_t n = 1);
  void SetTotal(int64_t total);

  // Redraws every `interval` on a background thread until Finish(): with `poll`, the count is poll()'s result
  // (work whose count another thread keeps); without, the line is "label: <spinner> mm:ss elapsed" (a blocking
  // call with nothing to count). Does nothing when disabled.
  void StartTicker(std::function<int64_t()> poll = nullptr);

  // Stops the ticker and writes the final line and a newline, once; later calls (of either) do nothing. Finish
  // says the work is done ("done in mm:ss"); Fail that it stopped short ("failed after mm:ss"), for the error
  // message the caller prints next.
  void Finish() { End(/*ok=*/true); }
  void Fail() { End(/*ok=*/false); }

 private:
  enum class Ending { kNone, kDone, kFailed };
  void End(bool ok);
  void DrawLocked(Ending ending) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time Now() const;

  const std::string label_;
  const ProgressOptions options_;
  const bool enabled_;
  const absl::Time start_;

  absl::Mutex mu_;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t total_ ABSL_GUARDED_BY(mu_);
  absl::Time last_draw_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  size_t last_width_ ABSL_GUARDED_BY(mu_) = 0;  // blanks to overwrite a longer previous line
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool counts_ ABSL_GUARDED_BY(mu_) = true;  // false: a ticker without poll (elapsed time only)
  int spins_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::function<int64_t()> poll_;
  std::thread ticker_;
};

}  // namespace accelsel

#endif  // ACCELSEL_UTIL_PROGRESS_H_
