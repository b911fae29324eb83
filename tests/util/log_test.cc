// The JSON-lines logger: every line parses as one JSON object with ts/level/event first and the fields typed;
// hostile strings (quotes, newlines, control bytes, invalid UTF-8, very long) stay inside their value; levels
// filter; concurrent writers never interleave; gRPC's own log arrives as "grpc" lines; IntervalSummary writes one
// line per interval with bounded keys.
#include "util/log.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpc/support/log.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "util/log_summary.h"

namespace accelsel::log {
namespace {

using nlohmann::json;

// Sends the log to a stream for a test's duration, and back to stderr before the stream goes (gRPC may log
// after the test, from its own threads).
struct Capture {
  explicit Capture(Level level) { Init(level, &out); }
  ~Capture() { Init(Level::kInfo); }
  std::ostringstream out;
};

// The lines written to a stream so far, each parsed (a line that does not parse fails the test).
std::vector<json> Lines(const std::ostringstream& out) {
  std::vector<json> lines;
  const std::string text = out.str();
  if (!text.empty()) {
    EXPECT_EQ(text.back(), '\n') << "the last line is not whole";
  }
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "not one JSON object: " << line;
    lines.push_back(std::move(j));
  }
  return lines;
}

TEST(LogTest, OneObjectPerLineWithTimeLevelEventAndTypedFields) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  Info("retrain_end", {{"version", uint64_t{7}},
                       {"delta", -3},
                       {"holdout_mape", 0.125},
                       {"promoted", true},
                       {"note", "promoted: first model"},
                       {"nan", std::nan("")},
                       {"inf", std::numeric_limits<double>::infinity()},
                       {"big", std::numeric_limits<uint64_t>::max()}});
  const std::string text = out.str();
  EXPECT_TRUE(text.starts_with(R"({"ts":")")) << text;
  EXPECT_NE(text.find(R"(,"level":"info","event":"retrain_end","version":7,)"), std::string::npos) << text;
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u);
  const json& j = lines[0];
  EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << j["ts"];
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["event"], "retrain_end");
  EXPECT_TRUE(j["version"].is_number_unsigned());
  EXPECT_EQ(j["version"], 7);
  EXPECT_EQ(j["delta"], -3);
  EXPECT_DOUBLE_EQ(j["holdout_mape"].get<double>(), 0.125);
  EXPECT_EQ(j["promoted"], true);
  EXPECT_EQ(j["note"], "promoted: first model");
  EXPECT_TRUE(j["nan"].is_null());
  EXPECT_TRUE(j["inf"].is_null());
  EXPECT_EQ(j["big"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
}

TEST(LogTest, TimestampIsUtcNow) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  const absl::Time before = absl::Now();
  Info("tick");
  const absl::Time after = absl::Now();
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u);
  absl::Time ts;
  std::string error;
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", lines[0]["ts"].get<std::string>(), &ts, &error)) << error;
  EXPECT_GE(ts, absl::FromUnixMillis(absl::ToUnixMillis(before)));  // the line's time is cut to milliseconds
  EXPECT_LE(ts, after);
}

TEST(LogTest, HostileStringsStayInsideTheirValue) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  const std::string hostile =
      "q\"uote\\back\nnew\rret\ttab\x01\x1f\x7f"     // JSON specials and control bytes
      "\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82|"         // a stray byte, an overlong '/', a surrogate, a cut sequence
      "\xe2\x82\xac \xe6\x97\xa5 \xf0\x9f\x98\x80";  // valid: euro sign, a CJK character, an emoji
  const std::string hostile_key = "k\"\n\x02";
  Warn(hostile, {{"value", hostile}, {hostile_key, "v"}, {"view", std::string_view("nul\0byte", 8)}});
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << "a raw newline escaped its value: " << text;
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u);
  const std::string want =
      "q\"uote\\back\nnew\rret\ttab\x01\x1f\x7f"
      "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
      "\xe2\x82\xac \xe6\x97\xa5 \xf0\x9f\x98\x80";
  EXPECT_EQ(lines[0]["event"], want);
  EXPECT_EQ(lines[0]["value"], want);
  EXPECT_EQ(lines[0]["k\"\n\x02"], "v");
  EXPECT_EQ(lines[0]["view"], std::string("nul\0byte", 8));
}

TEST(LogTest, LongValuesAreCutAtACharacterBoundary) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  // Three-byte characters, so the cut at kMaxValueBytes falls inside one unless it steps back.
  std::string long_value;
  while (long_value.size() < 3 * kMaxValueBytes) long_value += "\xe2\x82\xac";
  Info("long", {{"value", long_value}, {"after", 1}});
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u);
  const std::string value = lines[0]["value"];
  ASSERT_TRUE(value.ends_with("..."));
  EXPECT_LE(value.size(), kMaxValueBytes + 3);
  EXPECT_GE(value.size(), kMaxValueBytes - 3);
  EXPECT_EQ(value.find("\xef\xbf\xbd"), std::string::npos) << "the cut split a character";
  EXPECT_EQ(lines[0]["after"], 1);
}

TEST(LogTest, LevelsFilter) {
  Capture capture(Level::kWarn);
  std::ostringstream& out = capture.out;
  EXPECT_FALSE(Enabled(Level::kDebug));
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarn));
  EXPECT_TRUE(Enabled(Level::kError));
  Debug("d");
  Info("i");
  Warn("w");
  Error("e");
  SetLevel(Level::kDebug);
  Debug("d2");
  auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["event"], "w");
  EXPECT_EQ(lines[0]["level"], "warn");
  EXPECT_EQ(lines[1]["event"], "e");
  EXPECT_EQ(lines[1]["level"], "error");
  EXPECT_EQ(lines[2]["event"], "d2");
  EXPECT_EQ(lines[2]["level"], "debug");
}

TEST(LogTest, ParseLevelAndFlagSyntax) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    auto parsed = ParseLevel(LevelName(l));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, l);
    Level flag;
    std::string error;
    EXPECT_TRUE(AbslParseFlag(AbslUnparseFlag(l), &flag, &error));
    EXPECT_EQ(flag, l);
  }
  for (const char* bad : {"", "WARN", "warning", "verbose", "info "}) {
    EXPECT_FALSE(ParseLevel(bad).ok()) << bad;
    Level flag;
    std::string error;
    EXPECT_FALSE(AbslParseFlag(bad, &flag, &error)) << bad;
    EXPECT_NE(error.find("debug, info, warn or error"), std::string::npos) << error;
  }
}

TEST(LogTest, ConcurrentWritersNeverInterleave) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  constexpr int kThreads = 8;
  constexpr int kLines = 400;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      const std::string filler(200 + 37 * t, static_cast<char>('a' + t));
      for (int i = 0; i < kLines; ++i) Info("line", {{"thread", t}, {"seq", i}, {"filler", filler}});
    });
  }
  for (auto& th : threads) th.join();
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), size_t{kThreads * kLines});
  std::vector<int> next(kThreads, 0);
  for (const json& j : lines) {
    const int t = j["thread"];
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(j["seq"], next[t]++) << "a thread's lines out of order";
    EXPECT_EQ(j["filler"], std::string(200 + 37 * t, static_cast<char>('a' + t)));
  }
}

TEST(LogTest, GrpcLogArrivesAsGrpcLines) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  gpr_set_log_verbosity(GPR_LOG_SEVERITY_DEBUG);  // what GRPC_VERBOSITY=debug does
  gpr_log(GPR_ERROR, "transport \"%s\" failed: %d\n", "h2", 42);
  gpr_log(GPR_INFO, "an info line");
  gpr_log(GPR_DEBUG, "a debug line, below --log_level");
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["event"], "grpc");
  EXPECT_EQ(lines[0]["level"], "error");
  EXPECT_EQ(lines[0]["message"], "transport \"h2\" failed: 42");
  EXPECT_TRUE(lines[0]["file"].get<std::string>().ends_with("log_test.cc")) << lines[0]["file"];
  EXPECT_GT(lines[0]["line"].get<int>(), 0);
  EXPECT_EQ(lines[1]["level"], "info");
  EXPECT_EQ(lines[1]["message"], "an info line");
}

IntervalSummaryOptions RefusalOptions(absl::Duration interval) {
  IntervalSummaryOptions o;
  o.event = "rate_limited";
  o.count_field = "refused";
  o.key_field = "node";
  o.max_keys = 3;
  o.interval = interval;
  return o;
}

TEST(IntervalSummaryTest, OneLineForManyEventsWithTheTopKey) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  IntervalSummary summary(RefusalOptions(absl::ZeroDuration()));
  EXPECT_FALSE(summary.Flush()) << "nothing counted, nothing written";
  for (int i = 0; i < 500; ++i) summary.Add("node-b");
  summary.Add("node-a", 2);
  summary.Add("node-c");
  EXPECT_TRUE(out.str().empty()) << "no line per event";
  EXPECT_TRUE(summary.Flush());
  EXPECT_FALSE(summary.Flush()) << "the next interval starts empty";
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u);
  const json& j = lines[0];
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["event"], "rate_limited");
  EXPECT_EQ(j["refused"], 503);
  EXPECT_EQ(j["nodes"], 3);
  EXPECT_EQ(j["top_node"], "node-b");
  EXPECT_EQ(j["top_node_refused"], 500);
  EXPECT_EQ(j["nodes_capped"], false);
}

TEST(IntervalSummaryTest, KeysAreCappedButEveryEventCounts) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  IntervalSummary summary(RefusalOptions(absl::ZeroDuration()));
  for (int i = 0; i < 10000; ++i) summary.Add(absl::StrCat("peer:10.0.", i / 256, ".", i % 256));
  ASSERT_TRUE(summary.Flush());
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["refused"], 10000);
  EXPECT_EQ(lines[0]["nodes"], 3);
  EXPECT_EQ(lines[0]["nodes_capped"], true);
}

TEST(IntervalSummaryTest, WithoutKeysWritesTheTotalAndConstantFields) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  IntervalSummaryOptions o;
  o.event = "decision_log_dropped";
  o.count_field = "dropped";
  o.constant_fields = {{"queue_capacity", 4096}};
  o.interval = absl::ZeroDuration();
  IntervalSummary summary(o);
  summary.Add({}, 17);
  summary.Add();
  ASSERT_TRUE(summary.Flush());
  const auto lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["dropped"], 18);
  EXPECT_EQ(lines[0]["queue_capacity"], 4096);
  EXPECT_FALSE(lines[0].contains("top_"));
  EXPECT_FALSE(lines[0].contains("s"));
}

TEST(IntervalSummaryTest, OffLevelCountsNothing) {
  Capture capture(Level::kError);
  std::ostringstream& out = capture.out;
  IntervalSummary summary(RefusalOptions(absl::ZeroDuration()));
  summary.Add("node-a");
  EXPECT_FALSE(summary.Flush());
  EXPECT_TRUE(out.str().empty());
}

TEST(IntervalSummaryTest, TheThreadWritesAtMostOneLinePerInterval) {
  Capture capture(Level::kInfo);
  std::ostringstream& out = capture.out;
  constexpr absl::Duration kInterval = absl::Milliseconds(40);
  const absl::Time start = absl::Now();
  absl::Duration elapsed;
  uint64_t added = 0;
  {
    IntervalSummary summary(RefusalOptions(kInterval));
    // Events keep coming for several intervals and until the thread has written a line (bounded: 20 s).
    const absl::Time deadline = start + absl::Seconds(20);
    while (absl::Now() < deadline && (absl::Now() - start < 6 * kInterval || summary.lines_written() == 0)) {
      summary.Add("node-a");
      if (++added % 64 == 0) absl::SleepFor(absl::Milliseconds(1));
    }
    EXPECT_GE(summary.lines_written(), 1u) << "the thread wrote no line within 20 s";
    elapsed = absl::Now() - start;
  }  // the destructor writes what is pending
  const auto lines = Lines(out);
  ASSERT_GE(lines.size(), 1u);
  EXPECT_LE(static_cast<double>(lines.size()), elapsed / kInterval + 2) << "more than one line per interval";
  uint64_t total = 0;
  for (const json& j : lines) total += j["refused"].get<uint64_t>();
  EXPECT_EQ(total, added) << "every event counted once, in exactly one line";
}

}  // namespace
}  // namespace accelsel::log
