#include "util/progress.h"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace accelsel {
namespace {

// A clock the test moves by hand.
struct FakeClock {
  absl::Time t = absl::FromUnixSeconds(1000);
  std::function<absl::Time()> Fn() {
    return [this] { return t; };
  }
};

ProgressOptions On(std::ostream* out, FakeClock* clock) {
  ProgressOptions o;
  o.mode = ProgressOptions::Mode::kOn;
  o.out = out;
  o.now = clock->Fn();
  return o;
}

// On, with the real clock and a short interval, for the ticker's own thread.
ProgressOptions Ticking(std::ostream* out) {
  ProgressOptions o;
  o.mode = ProgressOptions::Mode::kOn;
  o.out = out;
  o.interval = absl::Milliseconds(5);
  return o;
}

TEST(FormatProgressTest, KnownTotalShowsPercentRateAndEta) {
  EXPECT_EQ(FormatProgress("import", 250, 1000, absl::Seconds(5)), "import: 250/1000 (25%) 50.0/s, ETA 00:15");
  EXPECT_EQ(FormatProgress("import", 1000, 1000, absl::Seconds(5)), "import: 1000/1000 (100%) 200/s");
  EXPECT_EQ(FormatProgress("eval", 0, 30, absl::Seconds(2)), "eval: 0/30 (0%) 0.0/s");
  EXPECT_EQ(FormatProgress("eval", 0, 30, absl::ZeroDuration()), "eval: 0/30 (0%)");
}

TEST(FormatProgressTest, UnknownTotalShowsCountAndRate) {
  EXPECT_EQ(FormatProgress("netsim", 1200, 0, absl::Seconds(4)), "netsim: 1200 300/s");
  EXPECT_EQ(FormatProgress("netsim", 5, -1, absl::Seconds(2)), "netsim: 5 2.5/s");
}

TEST(FormatProgressTest, EtaAndClockFormats) {
  EXPECT_EQ(FormatProgress("x", 1, 61, absl::Seconds(1)), "x: 1/61 (1%) 1.0/s, ETA 01:00");
  EXPECT_EQ(FormatClock(absl::Seconds(59)), "00:59");
  EXPECT_EQ(FormatClock(absl::Seconds(3725)), "1:02:05");
  EXPECT_EQ(FormatClock(-absl::Seconds(3)), "00:00");
}

TEST(ProgressTest, RedrawsAtMostOncePerInterval) {
  std::ostringstream out;
  FakeClock clock;
  {
    Progress p("import", 100, On(&out, &clock));
    for (int i = 0; i < 50; ++i) p.Add();  // no time passes: only the first call draws
    EXPECT_EQ(out.str(), "\rimport: 1/100 (1%)");
    clock.t += absl::Milliseconds(100);
    p.Add();
    EXPECT_EQ(out.str(), "\rimport: 1/100 (1%)");
    clock.t += absl::Milliseconds(150);
    p.Add();
    EXPECT_EQ(out.str(), "\rimport: 1/100 (1%)\rimport: 52/100 (52%) 208/s, ETA 00:00");
    clock.t += absl::Seconds(1);
    p.Update(100);
    p.Finish();
  }
  // The shorter third line is padded with blanks over the second.
  EXPECT_EQ(out.str(),
            "\rimport: 1/100 (1%)\rimport: 52/100 (52%) 208/s, ETA 00:00\rimport: 100/100 (100%) 80.0/s        \r"
            "import: 100/100 (100%) 80.0/s, done in 00:01\n");
}

TEST(ProgressTest, FinishWritesOneFinalLineWithNewline) {
  std::ostringstream out;
  FakeClock clock;
  Progress p("netsim", 0, On(&out, &clock));
  clock.t += absl::Seconds(2);
  p.Update(10);
  p.Finish();
  p.Finish();
  p.Add();  // after Finish: nothing more
  EXPECT_EQ(out.str(), "\rnetsim: 10 5.0/s\rnetsim: 10 5.0/s, done in 00:02\n");
}

// Fail, and a Progress destroyed without Finish (an early return on an error path), end the line as failed.
TEST(ProgressTest, FailOrDestructionWithoutFinishEndsTheLineAsFailed) {
  for (const bool fail : {true, false}) {
    std::ostringstream out;
    FakeClock clock;
    {
      Progress p("import", 10, On(&out, &clock));
      clock.t += absl::Seconds(2);
      p.Update(4);
      if (fail) {
        p.Fail();
        p.Finish();  // after Fail: nothing more
      }
    }
    EXPECT_EQ(out.str(), "\rimport: 4/10 (40%) 2.0/s, ETA 00:03\rimport: 4/10 (40%) 2.0/s, failed after 00:02\n")
        << (fail ? "Fail()" : "destroyed");
  }
}

TEST(ProgressTest, ShorterLinePadsOverTheLongerOne) {
  std::ostringstream out;
  FakeClock clock;
  Progress p("x", 0, On(&out, &clock));
  clock.t += absl::Seconds(1);
  p.Update(1000);  // "x: 1000 1000/s"
  clock.t += absl::Seconds(9);
  p.Update(1001);  // "x: 1001 100/s" is one shorter
  EXPECT_EQ(out.str(), "\rx: 1000 1000/s\rx: 1001 100/s ");
}

TEST(ProgressTest, ForcedOffPrintsNothing) {
  std::ostringstream out;
  FakeClock clock;
  ProgressOptions o = On(&out, &clock);
  o.mode = ProgressOptions::Mode::kOff;
  {
    Progress p("import", 10, o);
    EXPECT_FALSE(p.enabled());
    p.StartTicker();
    for (int i = 0; i < 10; ++i) p.Add();
    clock.t += absl::Seconds(5);
    p.Update(10);
  }
  EXPECT_EQ(out.str(), "");
}

TEST(ProgressTest, EnvironmentDecidesInAutoMode) {
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "1", 1), 0);
  EXPECT_TRUE(ProgressEnabled(ProgressOptions::Mode::kAuto));
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "0", 1), 0);
  EXPECT_FALSE(ProgressEnabled(ProgressOptions::Mode::kAuto));
  EXPECT_TRUE(ProgressEnabled(ProgressOptions::Mode::kOn));  // an explicit mode wins over the environment
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "1", 1), 0);
  EXPECT_FALSE(ProgressEnabled(ProgressOptions::Mode::kOff));
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "0", 1), 0);  // as tests/test_env.cc left it
}

TEST(ProgressTest, TickerShowsElapsedTimeUntilFinished) {
  std::ostringstream out;
  const ProgressOptions o = Ticking(&out);
  Progress p("retrain", 0, o);
  p.StartTicker();
  absl::SleepFor(absl::Milliseconds(300));  // many 5 ms ticks, even on a loaded machine
  p.Finish();
  const std::string s = out.str();
  EXPECT_EQ(s.rfind("\rretrain: | 00:00 elapsed", 0), 0u) << s;
  EXPECT_NE(s.find("\rretrain: / 00:00 elapsed"), std::string::npos) << s;
  EXPECT_EQ(s.substr(s.rfind('\r')), "\rretrain: done in 00:00  \n");  // blanks over "elapsed"
}

TEST(ProgressTest, TickerFailureSaysFailedAfterTheElapsedTime) {
  std::ostringstream out;
  const ProgressOptions o = Ticking(&out);
  Progress p("retrain", 0, o);
  p.StartTicker();
  absl::SleepFor(absl::Milliseconds(20));
  p.Fail();
  const std::string s = out.str();
  EXPECT_EQ(s.substr(s.rfind('\r')), "\rretrain: failed after 00:00\n");
  EXPECT_EQ(s.find("done"), std::string::npos) << s;
}

TEST(ProgressTest, TickerWithPollShowsThePolledCount) {
  std::ostringstream out;
  const ProgressOptions o = Ticking(&out);
  std::atomic<int64_t> acked{0};
  std::atomic<int> polls{0};
  Progress p("import", 7, o);
  p.StartTicker([&] {
    const int64_t n = acked.load();
    ++polls;
    return n;
  });
  // A second poll comes after the first line is drawn (with 0).
  while (polls.load() < 2) absl::SleepFor(absl::Milliseconds(1));
  acked = 7;
  p.Finish();
  const std::string s = out.str();
  EXPECT_EQ(s.rfind("\rimport: 0/7 (0%)", 0), 0u) << s;
  const std::string last = s.substr(s.rfind('\r'));
  EXPECT_EQ(last.rfind("\rimport: 7/7 (100%) ", 0), 0u) << s;
  EXPECT_EQ(last.back(), '\n');
}

}  // namespace
}  // namespace accelsel
