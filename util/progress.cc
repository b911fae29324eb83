#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace accelsel {

bool ProgressEnabled(ProgressOptions::Mode mode) {
  if (mode != ProgressOptions::Mode::kAuto) return mode == ProgressOptions::Mode::kOn;
  if (const char* env = std::getenv("ACCELSEL_PROGRESS"); env != nullptr && *env != '\0') {
    return std::string_view(env) != "0";
  }
  return isatty(STDERR_FILENO) == 1;
}

std::string FormatClock(absl::Duration d) {
  const int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(d));
  if (s >= 3600) return absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return absl::StrFormat("%02d:%02d", s / 60, s % 60);
}

std::string FormatProgress(const std::string& label, int64_t done, int64_t total, absl::Duration elapsed, bool eta) {
  std::string line = absl::StrCat(label, ": ", done);
  if (total > 0) {
    absl::StrAppendFormat(&line, "/%d (%d%%)", total, std::min<int64_t>(done, total) * 100 / total);
  }
  const double seconds = absl::ToDoubleSeconds(elapsed);
  if (seconds > 0) {
    const double rate = static_cast<double>(done) / seconds;
    if (rate >= 100) {
      absl::StrAppendFormat(&line, " %.0f/s", rate);
    } else {
      absl::StrAppendFormat(&line, " %.1f/s", rate);
    }
    if (eta && total > 0 && done > 0 && done < total) {
      absl::StrAppend(&line, ", ETA ", FormatClock(elapsed * (static_cast<double>(total - done) / done)));
    }
  }
  return line;
}

Progress::Progress(std::string label, int64_t total, ProgressOptions options)
    : label_(std::move(label)),
      options_(std::move(options)),
      enabled_(ProgressEnabled(options_.mode)),
      start_(Now()),
      total_(total) {}

Progress::~Progress() { Fail(); }

absl::Time Progress::Now() const { return options_.now ? options_.now() : absl::Now(); }

void Progress::Update(int64_t done) {
  if (!enabled_) return;
  absl::MutexLock lock(&mu_);
  done_ = done;
  if (!finished_ && Now() - last_draw_ >= options_.interval) DrawLocked(Ending::kNone);
}

void Progress::Add(int64_t n) {
  if (!enabled_) return;
  absl::MutexLock lock(&mu_);
  done_ += n;
  if (!finished_ && Now() - last_draw_ >= options_.interval) DrawLocked(Ending::kNone);
}

void Progress::SetTotal(int64_t total) {
  absl::MutexLock lock(&mu_);
  total_ = total;
}

void Progress::StartTicker(std::function<int64_t()> poll) {
  if (!enabled_ || ticker_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    counts_ = poll != nullptr;
  }
  poll_ = std::move(poll);
  ticker_ = std::thread([this] {
    while (true) {
      // The poll may take another object's lock: call it outside mu_.
      const int64_t polled = poll_ ? poll_() : 0;
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      if (poll_) done_ = polled;
      DrawLocked(Ending::kNone);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.interval);
      if (stop_) return;
    }
  });
}

void Progress::End(bool ok) {
  if (!enabled_) return;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || stop_) return;  // finished, or another thread is finishing
    stop_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
  if (poll_) {
    const int64_t polled = poll_();
    absl::MutexLock lock(&mu_);
    done_ = polled;
  }
  absl::MutexLock lock(&mu_);
  DrawLocked(ok ? Ending::kDone : Ending::kFailed);
  finished_ = true;
}

void Progress::DrawLocked(Ending ending) {
  const absl::Time now = Now();
  last_draw_ = now;
  const absl::Duration elapsed = now - start_;
  const bool final = ending != Ending::kNone;
  const std::string outcome =
      final ? absl::StrCat(ending == Ending::kDone ? "done in " : "failed after ", FormatClock(elapsed)) : "";
  std::string line;
  if (!counts_) {
    static constexpr char kSpinner[] = "|/-\\";
    line = final ? absl::StrCat(label_, ": ", outcome)
                 : absl::StrCat(label_, ": ", std::string(1, kSpinner[spins_++ % 4]), " ", FormatClock(elapsed),
                                " elapsed");
  } else {
    line = FormatProgress(label_, done_, total_, elapsed, /*eta=*/!final);
    if (final) absl::StrAppend(&line, ", ", outcome);
  }
  const size_t width = line.size();
  if (last_width_ > width) line.append(last_width_ - width, ' ');
  last_width_ = width;
  std::ostream& out = options_.out != nullptr ? *options_.out : std::cerr;
  out << '\r' << line << (final ? "\n" : "") << std::flush;
}

}  // namespace accelsel
