// Snapshot<T>: an immutable object published by pointer swap. Readers take a shared_ptr and keep the object alive
// for the duration of their call; a writer builds the replacement off to the side and publishes it in one step.
//
// Thread safety: Get and Set may be called from any threads at once. mu_ guards only the pointer and is held just
// long enough to copy or swap it (a reader lock for Get); no T is built, read or destroyed under it. Whoever holds a
// shared_ptr from Get shares ownership of that T, so a replaced object lives until its last reader lets go. T must
// be safe to read from several threads (it is const through the pointer; an immutable object is).
#ifndef ACCELSEL_SERVER_SNAPSHOT_H_
#define ACCELSEL_SERVER_SNAPSHOT_H_

#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace accelsel::server {

template <typename T>
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<const T> initial = nullptr) : current_(std::move(initial)) {}

  std::shared_ptr<const T> Get() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::ReaderMutexLock lock(&mu_);
    return current_;
  }
  // Returns the previous object so the caller decides when it is released (never under the lock).
  std::shared_ptr<const T> Set(std::shared_ptr<const T> next) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    std::swap(current_, next);
    return next;
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const T> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_SNAPSHOT_H_
