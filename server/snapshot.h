// Snapshot<T>: an immutable object published by pointer swap. Readers take a shared_ptr and keep the object alive
// for the duration of their call; a writer builds the replacement off to the side and publishes it in one step.
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

  std::shared_ptr<const T> Get() const {
    absl::ReaderMutexLock lock(&mu_);
    return current_;
  }
  // Returns the previous object so the caller decides when it is released (never under the lock).
  std::shared_ptr<const T> Set(std::shared_ptr<const T> next) {
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
