// The executor of blocking admin calls and retrain phases: threads started once, the training worker at its nice
// level, a bounded queue, a shutdown that drains, and no deadlock when admin jobs wait for a training.
#include "server/executor.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace accelsel::server {
namespace {

pid_t ThisThread() { return static_cast<pid_t>(syscall(SYS_gettid)); }

TEST(ExecutorTest, TrainingRunsOnOneWorkerAtItsNiceLevel) {
  Executor executor(ExecutorOptions{.admin_threads = 1, .training_nice = 19});
  std::set<pid_t> threads;
  for (int i = 0; i < 3; ++i) {
    executor.RunTraining([&] {
      threads.insert(ThisThread());
      EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(ThisThread())), 19);
      EXPECT_EQ(sched_getscheduler(ThisThread()), SCHED_IDLE);
    });
  }
  EXPECT_EQ(threads.size(), 1u) << "one worker, started once";
  EXPECT_EQ(threads.count(ThisThread()), 0u);
  // The caller keeps its own priority.
  EXPECT_NE(sched_getscheduler(ThisThread()), SCHED_IDLE);
}

TEST(ExecutorTest, NestedTrainingRunsInline) {
  Executor executor(ExecutorOptions{.training_nice = 0});
  pid_t outer = 0, inner = 0;
  executor.RunTraining([&] {
    outer = ThisThread();
    executor.RunTraining([&] { inner = ThisThread(); });
  });
  EXPECT_NE(outer, 0);
  EXPECT_EQ(inner, outer);
}

TEST(ExecutorTest, ShutdownRunsQueuedJobsAndThenRefuses) {
  Executor executor(ExecutorOptions{.admin_threads = 1, .training_nice = 0});
  absl::Notification release;
  std::atomic<int> ran{0};
  ASSERT_TRUE(executor.Submit([&] {
    release.WaitForNotification();
    ++ran;
  }));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(executor.Submit([&] { ++ran; }));
  std::thread stopper([&] { executor.Shutdown(); });
  release.Notify();
  stopper.join();
  EXPECT_EQ(ran.load(), 6);
  EXPECT_FALSE(executor.Submit([&] { ++ran; }));
  // After shutdown a training phase still runs, on the caller.
  pid_t ran_on = 0;
  executor.RunTraining([&] { ran_on = ThisThread(); });
  EXPECT_EQ(ran_on, ThisThread());
}

TEST(ExecutorTest, TheQueueIsBounded) {
  absl::Notification started, release;  // outlive the executor, whose destructor runs the queued jobs
  Executor executor(ExecutorOptions{.admin_threads = 1, .max_queued = 2, .training_nice = 0});
  ASSERT_TRUE(executor.Submit([&] {
    started.Notify();
    release.WaitForNotification();
  }));
  started.WaitForNotification();  // the worker holds the first job; the queue is empty
  EXPECT_TRUE(executor.Submit([] {}));
  EXPECT_TRUE(executor.Submit([] {}));
  EXPECT_FALSE(executor.Submit([] {})) << "a third waiting job is over max_queued";
  release.Notify();
}

// Every admin worker busy with a job that waits for a training phase (an admin Retrain), and the trainer's own
// phase as well: the training worker runs them one after the other, so all of them finish.
TEST(ExecutorTest, AdminJobsWaitingForTrainingDoNotDeadlock) {
  std::atomic<int> trained{0};
  absl::Notification done[4];
  Executor executor(ExecutorOptions{.admin_threads = 2, .training_nice = 0});
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(executor.Submit([&, i] {
      executor.RunTraining([&] { ++trained; });
      done[i].Notify();
    }));
  }
  executor.RunTraining([&] { ++trained; });
  for (auto& d : done) d.WaitForNotification();
  EXPECT_EQ(trained.load(), 5);
}

}  // namespace
}  // namespace accelsel::server
