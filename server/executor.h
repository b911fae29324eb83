// Executor: the threads that run the server's blocking background work, started once — the admin RPCs that block
// (Retrain, PinModel, RollbackModel) and the heavy phases of a retrain (scan, train, evaluate) — so that no thread
// is started per admin call or per retrain phase.
//
// Two kinds of worker, because the two kinds of work must not wait for each other:
//  - `admin_threads` workers run the jobs given to Submit, in order, from a bounded queue. They keep the priority of
//    the thread that built the executor: an admin job takes the locks a request takes (the statistics' reader lock,
//    the serving snapshot's swap, the store's write mutex), which a deprioritised thread must never hold.
//  - one training worker runs what RunTraining hands it, at `training_nice` (19 also takes SCHED_IDLE), set once
//    when it starts (Linux does not let an unprivileged thread raise its priority back, which is why it is a thread
//    of its own). An admin Retrain waits on it from an admin worker; because it never runs admin jobs, a queue full of
//    admin calls waiting for a training can never take the worker that training needs.
//
// Thread safety: every method may be called from any thread. Submit and RunTraining after Shutdown began: Submit
// refuses the job, RunTraining runs it on the caller's thread. Shutdown runs the jobs already queued (it drains),
// then joins every worker; the destructor calls it. A job must not call Shutdown. Ownership: the executor owns its
// threads and each job until the job has run (a job is destroyed on its worker right after it returns).
#ifndef ACCELSEL_SERVER_EXECUTOR_H_
#define ACCELSEL_SERVER_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace accelsel::server {

struct ExecutorOptions {
  // Workers for Submit (at least 1). The blocking admin calls all wait for one lock of the model manager, so more
  // than a couple would only wait there.
  int admin_threads = 2;
  // Jobs waiting for an admin worker, at most; Submit refuses more (0 = no bound).
  size_t max_queued = 64;
  // Nice level of the training worker (0 = the creator's priority); 19 also takes SCHED_IDLE, so that any runnable
  // RPC thread preempts training at once. Threads a training job starts inherit it.
  int training_nice = 19;
};

class Executor {
 public:
  using Job = absl::AnyInvocable<void()>;

  explicit Executor(const ExecutorOptions& options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `job` for an admin worker. False, without running it, once Shutdown began or when max_queued jobs are
  // already waiting.
  bool Submit(Job job) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `fn` on the training worker and returns when it has run. On the training worker itself (a nested call),
  // or once Shutdown has stopped it, `fn` runs on the calling thread. One call at a time runs; others wait.
  void RunTraining(absl::FunctionRef<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  // Refuses new jobs, runs the queued ones, and joins the workers. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void AdminLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void TrainingLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const ExecutorOptions options_;
  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;         // Submit refuses; admin workers exit once queue_ is empty
  bool training_stop_ ABSL_GUARDED_BY(mu_) = false;    // the training worker exits when idle
  bool training_exited_ ABSL_GUARDED_BY(mu_) = false;  // RunTraining runs on the caller from now on
  // The one training hand-off: set by RunTraining, cleared by the worker when it has run.
  absl::FunctionRef<void()>* training_job_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool training_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex training_caller_mu_;  // one RunTraining hand-off at a time (held while waiting for it)
  std::vector<std::thread> admin_workers_;
  std::thread training_worker_;
  absl::Mutex shutdown_mu_;  // makes Shutdown idempotent and its joins single
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_EXECUTOR_H_
