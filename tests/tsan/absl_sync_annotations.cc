// TSan builds only: makes Debian's (uninstrumented) absl::Mutex, CondVar and Notification visible to TSan.
// Each exported entry point is interposed here, forwards to the library, and tells TSan about the happens-before
// edge it creates (__tsan_release before giving a mutex up, __tsan_acquire after getting it). Without this, TSan
// sees none of absl's synchronisation and reports every ABSL_GUARDED_BY member as racing; with it, what TSan
// reports in accelsel's code is a real race. Linked into every target of an ACCELSEL_SANITIZE=thread build
// (top-level CMakeLists.txt), ahead of libabsl_synchronization, so these definitions win.
//
// absl evaluates an Await/LockWhen condition inside the library, on whichever thread holds the mutex at that
// moment (often the one unlocking): the condition is wrapped so that each evaluation is a small critical section
// to TSan too.
//
// The symbols are named by their mangled names because Debian's Abseil lives in the inline namespace
// absl::debian3; the argument types are laid out like absl's (a Duration is {int64, uint32}, a Time wraps one).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"

namespace {

// A condition that evaluates `user` as if inside `mu`'s critical section.
struct WrappedCondition {
  WrappedCondition(void* mu, const void* user)
      : mu(mu), user(static_cast<const absl::Condition*>(user)), condition(&Eval, this) {}
  static bool Eval(WrappedCondition* w) {
    __tsan_acquire(w->mu);
    const bool r = w->user->Eval();
    __tsan_release(w->mu);
    return r;
  }
  void* mu;
  const absl::Condition* user;
  absl::Condition condition;
};

struct Duration {  // absl::Duration's layout
  int64_t rep_hi;
  uint32_t rep_lo;
};
struct Time {  // absl::Time's layout
  Duration rep;
};

// The library's own definition of `mangled`, looked up once.
template <typename Fn>
Fn Next(const char* mangled) {
  void* p = dlsym(RTLD_NEXT, mangled);
  if (p == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found: %s\n", mangled, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(p);
}

}  // namespace

#define ACCELSEL_NEXT(type, mangled)            \
  static const auto real = Next<type>(mangled); \
  (void)0

extern "C" {

// --- absl::Mutex ---------------------------------------------------------------------------------------------
void MutexLock(void* mu) __asm__("_ZN4absl7debian35Mutex4LockEv");
void MutexLock(void* mu) {
  ACCELSEL_NEXT(void (*)(void*), "_ZN4absl7debian35Mutex4LockEv");
  real(mu);
  __tsan_acquire(mu);
}

void MutexReaderLock(void* mu) __asm__("_ZN4absl7debian35Mutex10ReaderLockEv");
void MutexReaderLock(void* mu) {
  ACCELSEL_NEXT(void (*)(void*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(mu);
  __tsan_acquire(mu);
}

bool MutexTryLock(void* mu) __asm__("_ZN4absl7debian35Mutex7TryLockEv");
bool MutexTryLock(void* mu) {
  ACCELSEL_NEXT(bool (*)(void*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(mu);
  if (locked) __tsan_acquire(mu);
  return locked;
}

bool MutexReaderTryLock(void* mu) __asm__("_ZN4absl7debian35Mutex13ReaderTryLockEv");
bool MutexReaderTryLock(void* mu) {
  ACCELSEL_NEXT(bool (*)(void*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = real(mu);
  if (locked) __tsan_acquire(mu);
  return locked;
}

void MutexUnlock(void* mu) __asm__("_ZN4absl7debian35Mutex6UnlockEv");
void MutexUnlock(void* mu) {
  ACCELSEL_NEXT(void (*)(void*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(mu);
  real(mu);
}

void MutexReaderUnlock(void* mu) __asm__("_ZN4absl7debian35Mutex12ReaderUnlockEv");
void MutexReaderUnlock(void* mu) {
  ACCELSEL_NEXT(void (*)(void*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(mu);
  real(mu);
}

void MutexLockWhen(void* mu, const void* cond) __asm__("_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
void MutexLockWhen(void* mu, const void* cond) {
  ACCELSEL_NEXT(void (*)(void*, const void*), "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  WrappedCondition w(mu, cond);
  real(mu, &w.condition);
  __tsan_acquire(mu);
}

void MutexReaderLockWhen(void* mu,
                         const void* cond) __asm__("_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
void MutexReaderLockWhen(void* mu, const void* cond) {
  ACCELSEL_NEXT(void (*)(void*, const void*), "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  WrappedCondition w(mu, cond);
  real(mu, &w.condition);
  __tsan_acquire(mu);
}

// The *WithTimeout / *WithDeadline forms hold the mutex on return whatever they return.
bool MutexLockWhenWithTimeout(void* mu, const void* cond, Duration d) __asm__(
    "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
bool MutexLockWhenWithTimeout(void* mu, const void* cond, Duration d) {
  ACCELSEL_NEXT(bool (*)(void*, const void*, Duration),
                "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  WrappedCondition w(mu, cond);
  const bool r = real(mu, &w.condition, d);
  __tsan_acquire(mu);
  return r;
}

bool MutexLockWhenWithDeadline(void* mu, const void* cond, Time t) __asm__(
    "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
bool MutexLockWhenWithDeadline(void* mu, const void* cond, Time t) {
  ACCELSEL_NEXT(bool (*)(void*, const void*, Time),
                "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  WrappedCondition w(mu, cond);
  const bool r = real(mu, &w.condition, t);
  __tsan_acquire(mu);
  return r;
}

bool MutexReaderLockWhenWithTimeout(void* mu, const void* cond, Duration d) __asm__(
    "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
bool MutexReaderLockWhenWithTimeout(void* mu, const void* cond, Duration d) {
  ACCELSEL_NEXT(bool (*)(void*, const void*, Duration),
                "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  WrappedCondition w(mu, cond);
  const bool r = real(mu, &w.condition, d);
  __tsan_acquire(mu);
  return r;
}

bool MutexReaderLockWhenWithDeadline(void* mu, const void* cond, Time t) __asm__(
    "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
bool MutexReaderLockWhenWithDeadline(void* mu, const void* cond, Time t) {
  ACCELSEL_NEXT(bool (*)(void*, const void*, Time),
                "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  WrappedCondition w(mu, cond);
  const bool r = real(mu, &w.condition, t);
  __tsan_acquire(mu);
  return r;
}

// Await releases the mutex while it waits and holds it again on return.
void MutexAwait(void* mu, const void* cond) __asm__("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
void MutexAwait(void* mu, const void* cond) {
  ACCELSEL_NEXT(void (*)(void*, const void*), "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(mu);
  WrappedCondition w(mu, cond);
  real(mu, &w.condition);
  __tsan_acquire(mu);
}

bool MutexAwaitWithTimeout(void* mu, const void* cond, Duration d) __asm__(
    "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
bool MutexAwaitWithTimeout(void* mu, const void* cond, Duration d) {
  ACCELSEL_NEXT(bool (*)(void*, const void*, Duration),
                "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_release(mu);
  WrappedCondition w(mu, cond);
  const bool r = real(mu, &w.condition, d);
  __tsan_acquire(mu);
  return r;
}

bool MutexAwaitWithDeadline(void* mu, const void* cond,
                            Time t) __asm__("_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
bool MutexAwaitWithDeadline(void* mu, const void* cond, Time t) {
  ACCELSEL_NEXT(bool (*)(void*, const void*, Time),
                "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_release(mu);
  WrappedCondition w(mu, cond);
  const bool r = real(mu, &w.condition, t);
  __tsan_acquire(mu);
  return r;
}

// --- absl::CondVar: Wait* gives the mutex up and takes it again ---------------------------------------------
void CondVarWait(void* cv, void* mu) __asm__("_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
void CondVarWait(void* cv, void* mu) {
  ACCELSEL_NEXT(void (*)(void*, void*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(cv, mu);
  __tsan_acquire(mu);
}

bool CondVarWaitWithTimeout(void* cv, void* mu,
                            Duration d) __asm__("_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
bool CondVarWaitWithTimeout(void* cv, void* mu, Duration d) {
  ACCELSEL_NEXT(bool (*)(void*, void*, Duration),
                "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool r = real(cv, mu, d);
  __tsan_acquire(mu);
  return r;
}

bool CondVarWaitWithDeadline(void* cv, void* mu,
                             Time t) __asm__("_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
bool CondVarWaitWithDeadline(void* cv, void* mu, Time t) {
  ACCELSEL_NEXT(bool (*)(void*, void*, Time), "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool r = real(cv, mu, t);
  __tsan_acquire(mu);
  return r;
}

// --- absl::Notification: Notify happens before every wait that returns because of it ------------------------
void NotificationNotify(void* n) __asm__("_ZN4absl7debian312Notification6NotifyEv");
void NotificationNotify(void* n) {
  ACCELSEL_NEXT(void (*)(void*), "_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(n);
  real(n);
}

void NotificationWait(const void* n) __asm__("_ZNK4absl7debian312Notification19WaitForNotificationEv");
void NotificationWait(const void* n) {
  ACCELSEL_NEXT(void (*)(const void*), "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(n);
  __tsan_acquire(const_cast<void*>(n));
}

bool NotificationWaitWithTimeout(const void* n, Duration d) __asm__(
    "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
bool NotificationWaitWithTimeout(const void* n, Duration d) {
  ACCELSEL_NEXT(bool (*)(const void*, Duration),
                "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool r = real(n, d);
  if (r) __tsan_acquire(const_cast<void*>(n));
  return r;
}

bool NotificationWaitWithDeadline(const void* n, Time t) __asm__(
    "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
bool NotificationWaitWithDeadline(const void* n, Time t) {
  ACCELSEL_NEXT(bool (*)(const void*, Time),
                "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool r = real(n, t);
  if (r) __tsan_acquire(const_cast<void*>(n));
  return r;
}

}  // extern "C"
