// Executor: admin workers over a bounded queue, and one training worker niced once at its start; see executor.h.
#include "server/executor.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace accelsel::server {
namespace {

// The executor whose training worker this thread is (null elsewhere): a RunTraining from it runs inline.
thread_local const Executor* training_worker_of = nullptr;

// Lowers the calling thread to nice level `nice`, so that training yields its core to the RPC threads whenever they
// are runnable instead of competing with them as an equal. Best effort: a refusal leaves the priority as it was.
void LowerThisThread(int nice) {
  if (nice == 0) return;
  const auto tid = static_cast<pid_t>(syscall(SYS_gettid));
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice);
  if (nice >= 19) {
    // The lowest nice level also takes the SCHED_IDLE policy (allowed unprivileged): Linux treats a core that runs
    // only SCHED_IDLE threads as idle when it places a waking thread, so an RPC thread preempts training at once
    // instead of waiting for a nice-19 thread's slice. Threads the training starts inherit it.
    sched_param param{};
    (void)sched_setscheduler(tid, SCHED_IDLE, &param);
  }
}

}  // namespace

Executor::Executor(const ExecutorOptions& options) : options_(options) {
  const int admin = std::max(options_.admin_threads, 1);
  admin_workers_.reserve(static_cast<size_t>(admin));
  for (int i = 0; i < admin; ++i) admin_workers_.emplace_back([this] { AdminLoop(); });
  training_worker_ = std::thread([this] { TrainingLoop(); });
}

Executor::~Executor() { Shutdown(); }

bool Executor::Submit(Job job) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  if (options_.max_queued > 0 && queue_.size() >= options_.max_queued) return false;
  queue_.push_back(std::move(job));
  return true;
}

void Executor::AdminLoop() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Executor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) { return e->stopping_ || !e->queue_.empty(); }, this));
      if (queue_.empty()) return;  // stopping, and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
    job = nullptr;  // the job's captures go here, on its worker, before the next one starts
  }
}

void Executor::RunTraining(absl::FunctionRef<void()> fn) {
  if (training_worker_of == this) {
    fn();
    return;
  }
  absl::MutexLock caller(&training_caller_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (!training_exited_) {
      training_job_ = &fn;
      training_done_ = false;
      mu_.Await(absl::Condition(&training_done_));
      return;
    }
  }
  fn();  // the worker has stopped (shutdown): at the caller's priority
}

void Executor::TrainingLoop() {
  training_worker_of = this;
  LowerThisThread(options_.training_nice);
  for (;;) {
    absl::FunctionRef<void()>* fn = nullptr;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Executor* e)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) { return e->training_stop_ || e->training_job_ != nullptr; },
          this));
      if (training_job_ == nullptr) {  // stopping, and idle
        training_exited_ = true;
        return;
      }
      fn = training_job_;
    }
    (*fn)();  // the caller waits in RunTraining, so `fn` lives until training_done_ is set
    absl::MutexLock lock(&mu_);
    training_job_ = nullptr;
    training_done_ = true;
  }
}

void Executor::Shutdown() {
  absl::MutexLock once(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // Admin jobs first: a queued Retrain still hands its phases to the training worker.
  for (std::thread& t : admin_workers_) t.join();
  {
    absl::MutexLock lock(&mu_);
    training_stop_ = true;
  }
  training_worker_.join();
}

}  // namespace accelsel::server
