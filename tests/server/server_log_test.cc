// The server's log lines as an operator reads them. The binary: every stderr line parses as JSON; a seeded start
// says seed_start, seed_progress, seed_done, then start with the bound port, and SIGTERM gives shutdown_begin and
// shutdown_done; gRPC's own log arrives as "grpc" lines; a bad --log_level is a usage error. In-process: retrains
// log their figures and the promotion or rejection with its note, pins are logged, and rate-limit refusals become
// one summary line per interval, not one per call.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/model_manager.h"
#include "tests/server/test_server.h"
#include "util/log.h"

extern char** environ;

namespace accelsel::testing {
namespace {

using nlohmann::json;

// accelsel-server run with its stderr on a pipe that the test reads line by line, and its stdout (the plain
// readiness line) on another.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& flags, const std::vector<std::string>& extra_env = {}) {
    const char* bin_dir = std::getenv("ACCELSEL_BIN_DIR");
    std::vector<std::string> args = {absl::StrCat(bin_dir ? bin_dir : ".", "/accelsel-server")};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = extra_env;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    int err[2], out[2];
    if (pipe2(err, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(err[1]);
    close(out[1]);
    err_fd_ = err[0];
    out_fd_ = out[0];
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (err_fd_ >= 0) close(err_fd_);
    if (out_fd_ >= 0) close(out_fd_);
  }
  bool started() const { return pid_ > 0 && err_fd_ >= 0; }

  // Reads stderr lines until one's "event" is `event` (true) or until EOF or `timeout` (false). Every line read is
  // parsed and kept in lines(); a line that is not one JSON object fails the test.
  bool ReadUntil(const std::string& event, absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      while (true) {
        const size_t nl = pending_.find('\n');
        if (nl == std::string::npos) break;
        const std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
        EXPECT_TRUE(j.is_object()) << "a stderr line that is not one JSON object: " << line;
        if (!j.is_object()) continue;
        lines_.push_back(j);
        if (j.value("event", "") == event) return true;
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      if (!ReadSome(err_fd_, deadline, &pending_)) return false;
    }
  }
  // Reads stdout until it holds `text` (the readiness line), bounded by `timeout`.
  bool StdoutHas(const std::string& text, absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (stdout_.find(text) == std::string::npos) {
      if (!ReadSome(out_fd_, deadline, &stdout_)) return false;
    }
    return true;
  }
  // SIGTERM; reads (and parses) stderr to its end, so the server never blocks on a full pipe; the exit status.
  int TerminateAndWait() {
    kill(pid_, SIGTERM);
    ReadUntil("", absl::Seconds(60));  // no line has an empty event: reads to EOF
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  const std::vector<json>& lines() const { return lines_; }
  std::vector<json> Events(const std::string& event) const {
    std::vector<json> out;
    for (const json& j : lines_) {
      if (j.value("event", "") == event) out.push_back(j);
    }
    return out;
  }
  // SIGTERM; all of stderr left until EOF, raw; the exit status.
  std::pair<std::string, int> TerminateAndReadRest() {
    kill(pid_, SIGTERM);
    std::string rest = ReadRest();
    return {rest, Wait()};
  }
  // All of stderr left until EOF, raw (for a usage error, which is plain text).
  std::string ReadRest() {
    std::string out = pending_;
    char buf[4096];
    ssize_t n;
    while ((n = read(err_fd_, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  // Appends what `fd` has to `to`, waiting for it until `deadline`; false on EOF or timeout.
  static bool ReadSome(int fd, absl::Time deadline, std::string* to) {
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      pollfd p{fd, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
      char buf[4096];
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) return false;  // EOF: the server exited
      to->append(buf, static_cast<size_t>(n));
      return true;
    }
  }

  pid_t pid_ = -1;
  int err_fd_ = -1;
  int out_fd_ = -1;
  std::string pending_;
  std::string stdout_;
  std::vector<json> lines_;
};

std::string SourceFile(const std::string& relative) {
  const char* src = std::getenv("ACCELSEL_SOURCE_DIR");
  return absl::StrCat(src ? src : ".", "/", relative);
}

// A server on a fresh store under `dir` that seeds itself from the small fixture table.
std::vector<std::string> SeededServerFlags(const std::string& dir) {
  return {"--listen=127.0.0.1:0",
          "--metrics_listen=",
          absl::StrCat("--data_dir=", dir, "/data"),
          "--trainer=false",
          absl::StrCat("--seed_csv=", SourceFile("tests/fixtures/llm_bench_small.csv")),
          absl::StrCat("--descriptors_dir=", SourceFile("data/descriptors")),
          "--shutdown_grace=2s"};
}

TEST(ServerLogTest, SeededStartAndShutdownAreJsonLines) {
  const std::string dir = FreshDir("server-log");
  // ACCELSEL_PROGRESS empty counts as unset: the rule for a pipe applies, not the tests' forced off.
  ServerProcess server(SeededServerFlags(dir), {"ACCELSEL_PROGRESS="});
  ASSERT_TRUE(server.started());
  ASSERT_TRUE(server.ReadUntil("start")) << "no start line";
  std::vector<std::string> order;
  for (const json& j : server.lines()) order.push_back(j["event"]);
  EXPECT_EQ(order, (std::vector<std::string>{"starting", "seed_start", "seed_progress", "seed_done",
                                             "observed_stats_rebuilt", "start"}));
  for (const json& j : server.lines()) {
    EXPECT_TRUE(j["ts"].is_string());
    EXPECT_EQ(j["level"], "info");
  }
  const json seed_done = server.Events("seed_done").at(0);
  EXPECT_EQ(seed_done["rows"], 10);
  const json rebuilt = server.Events("observed_stats_rebuilt").at(0);
  EXPECT_EQ(rebuilt["runs"], 10);  // the seeded runs, read back
  EXPECT_GE(rebuilt["threads"].get<int>(), 1);
  EXPECT_EQ(seed_done["stored"], 10);
  const json start = server.Events("start").at(0);
  const int port = start["port"];
  EXPECT_GT(port, 0);
  EXPECT_EQ(start["listen"], absl::StrCat("127.0.0.1:", port));
  EXPECT_EQ(start["metrics_port"], 0);
  EXPECT_EQ(start["data_dir"], dir + "/data");
  EXPECT_EQ(start["runs_stored"], 10);
  EXPECT_EQ(start["model_version"], 0);
  EXPECT_EQ(start["tls"], false);
  EXPECT_EQ(start["auth"], false);

  const int status = server.TerminateAndWait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_EQ(server.Events("shutdown_done").size(), 1u);
  EXPECT_EQ(server.lines().back()["event"], "shutdown_done") << "the last line";
  const auto begin = server.Events("shutdown_begin");
  ASSERT_EQ(begin.size(), 1u);
  EXPECT_EQ(begin[0]["signal"], "SIGTERM");
  EXPECT_EQ(begin[0]["grace_s"], 2);
}

// Where progress is shown (a terminal; here forced with ACCELSEL_PROGRESS=1) seeding draws one line per phase on
// stderr, each ended before the next log line, and the log lines are the ones a pipe gets.
TEST(ServerLogTest, SeedingShowsProgressPerPhaseWhenEnabled) {
  const std::string dir = FreshDir("server-log-progress");
  ServerProcess server(SeededServerFlags(dir), {"ACCELSEL_PROGRESS=1"});
  ASSERT_TRUE(server.started());
  ASSERT_TRUE(server.StdoutHas("listening on")) << "no readiness line on stdout";
  const auto [err, status] = server.TerminateAndReadRest();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  // Each stderr line is a JSON log line or a progress line ('\r' redraws); a progress line stands for what it
  // finally said.
  std::vector<std::string> order;
  std::vector<std::string> finals;
  for (const absl::string_view line : absl::StrSplit(err, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "\r")) {
      std::string last(line.substr(line.rfind('\r') + 1));
      last.erase(last.find_last_not_of(' ') + 1);
      order.push_back(last.substr(0, last.find(':')));
      finals.push_back(last);
      continue;
    }
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << "a stderr line that is neither JSON nor progress: " << line;
    order.push_back(j.value("event", ""));
    if (order.back() == "start") break;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"starting", "seed_start", "seed parse", "seed_progress", "seed store",
                                             "seed_done", "observed_stats_rebuilt", "start"}))
      << err;
  ASSERT_EQ(finals.size(), 2u) << err;
  EXPECT_EQ(finals[0].rfind("seed parse: done in 00:0", 0), 0u) << finals[0];
  EXPECT_EQ(finals[1].rfind("seed store: 10/10 (100%) ", 0), 0u) << finals[1];
  EXPECT_NE(finals[1].find(", done in 00:0"), std::string::npos) << finals[1];
}

TEST(ServerLogTest, GrpcOwnLogArrivesAsGrpcLines) {
  const std::string dir = FreshDir("server-log-grpc");
  ServerProcess server({"--listen=127.0.0.1:0", "--metrics_listen=", absl::StrCat("--data_dir=", dir, "/data"),
                        "--trainer=false", "--seed_csv=", "--log_level=debug"},
                       {"GRPC_VERBOSITY=debug"});
  ASSERT_TRUE(server.started());
  ASSERT_TRUE(server.ReadUntil("start"));
  const auto grpc = server.Events("grpc");
  ASSERT_FALSE(grpc.empty()) << "GRPC_VERBOSITY=debug logs while the server starts";
  for (const json& j : grpc) {
    EXPECT_TRUE(j["file"].is_string());
    EXPECT_TRUE(j["line"].is_number_integer());
    EXPECT_TRUE(j["message"].is_string());
    EXPECT_TRUE(j["level"] == "debug" || j["level"] == "info" || j["level"] == "error") << j;
  }
  server.TerminateAndWait();
}

TEST(ServerLogTest, LogLevelFiltersAndABadOneIsAUsageError) {
  const std::string dir = FreshDir("server-log-level");
  {
    // At warn, a clean start and stop write nothing at all to stderr.
    ServerProcess server({"--listen=127.0.0.1:0", "--metrics_listen=", absl::StrCat("--data_dir=", dir, "/data"),
                          "--trainer=false", "--seed_csv=", "--log_level=warn"});
    ASSERT_TRUE(server.started());
    ASSERT_TRUE(server.StdoutHas("listening on")) << "no readiness line on stdout";
    const int status = server.TerminateAndWait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_TRUE(server.lines().empty()) << server.lines().front();
  }
  ServerProcess bad({"--log_level=verbose", absl::StrCat("--data_dir=", dir, "/bad")});
  ASSERT_TRUE(bad.started());
  const int status = bad.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  EXPECT_NE(bad.ReadRest().find("debug, info, warn or error"), std::string::npos);
}

// Sends the log to a stream for a test's duration, and back to stderr before the stream goes (gRPC may log
// after the test, from its own threads).
struct Capture {
  explicit Capture(log::Level level) { log::Init(level, &out); }
  ~Capture() { log::Init(log::Level::kInfo); }
  std::ostringstream out;
};

// In-process: the lines are captured from log::Init's stream and read once the server is gone (no line is
// written concurrently with the reading).
std::vector<json> Parse(const std::string& text) {
  std::vector<json> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << line;
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<json> Events(const std::vector<json>& lines, const std::string& event) {
  std::vector<json> out;
  for (const json& j : lines) {
    if (j.value("event", "") == event) out.push_back(j);
  }
  return out;
}

TEST(ServerLogTest, RetrainsLogTheirFiguresAndWhyTheyWerePromotedOrNot) {
  Capture capture(log::Level::kInfo);
  std::ostringstream& out = capture.out;
  auto server = server::Server::Start(TestOptions(FreshDir("server-log-retrain")));
  ASSERT_TRUE(server.ok()) << server.status();
  Connection conn = Connect((*server)->port());
  for (const char* id : {"small", "large"}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = MakeStrategy(id);
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    auto stream = conn.selector->ReportRun(&ctx);
    int i = 0;
    for (uint32_t batch : {1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u}) {
      for (uint32_t prompt : {128u, 256u, 512u, 1024u}) {
        for (const std::string s : {"small", "large"}) {
          for (int rep = 0; rep < 3; ++rep) {
            v1::RunReport r =
                MakeReport(absl::StrCat("r-", i++), s, batch,
                           (s == "small" ? 20.0 * batch : 160.0 + 10.0 * batch) * prompt / 512.0 * (1 + 0.05 * rep),
                           absl::StrCat("node-", rep));
            r.mutable_context()->mutable_workload()->set_prompt_tokens(prompt);
            ASSERT_TRUE(stream->Write(r));
          }
        }
      }
    }
    stream->WritesDone();
    v1::RunAck ack;
    while (stream->Read(&ack)) {
    }
    ASSERT_TRUE(stream->Finish().ok());
  }
  for (int round = 0; round < 2; ++round) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 300);
    v1::RetrainResponse resp;
    const grpc::Status st = conn.admin->Retrain(&ctx, {}, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  ASSERT_TRUE((*server)->core().models().Pin(1).ok());
  ASSERT_TRUE((*server)->core().models().Pin(0).ok());
  (*server)->Shutdown();
  server->reset();

  const auto lines = Parse(out.str());
  const auto starts = Events(lines, "retrain_start");
  const auto ends = Events(lines, "retrain_end");
  ASSERT_EQ(starts.size(), 2u);
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(starts[0]["trigger"], "rpc");
  EXPECT_EQ(starts[0]["runs_stored"], 192);
  EXPECT_EQ(starts[0]["serving_version"], 0);
  const json& first = ends[0];
  EXPECT_EQ(first["trigger"], "rpc");
  EXPECT_EQ(first["version"], 1);
  EXPECT_GT(first["training_rows"].get<int>(), 0);
  EXPECT_GT(first["holdout_rows"].get<int>(), 0);
  EXPECT_EQ(first["training_rows"].get<int>() + first["holdout_rows"].get<int>(), 192);
  EXPECT_GT(first["seconds"].get<double>(), 0);
  EXPECT_TRUE(first["holdout_mape"].is_number());
  EXPECT_TRUE(first["holdout_top1"].is_number());
  EXPECT_TRUE(first["holdout_coverage80"].is_number());
  EXPECT_EQ(first["promoted"], true);
  EXPECT_TRUE(absl::StartsWith(first["note"].get<std::string>(), "promoted: first model")) << first["note"];
  const auto promotions = Events(lines, "promotion");
  ASSERT_FALSE(promotions.empty());
  EXPECT_EQ(promotions[0]["version"], 1);
  EXPECT_EQ(promotions[0]["previous_version"], 0);
  EXPECT_EQ(promotions[0]["note"], first["note"]);
  // The second candidate: promoted or held back, the line after its figures says which and repeats the note.
  const json& second = ends[1];
  EXPECT_EQ(second["version"], 2);
  EXPECT_EQ(second["serving_version"], 1);
  const auto rejections = Events(lines, "rejection");
  if (second["promoted"] == true) {
    ASSERT_EQ(promotions.size(), 2u);
    EXPECT_EQ(promotions[1]["note"], second["note"]);
    EXPECT_TRUE(rejections.empty());
  } else {
    ASSERT_EQ(rejections.size(), 1u);
    EXPECT_EQ(rejections[0]["level"], "warn");
    EXPECT_EQ(rejections[0]["serving_version"], 1);
    EXPECT_EQ(rejections[0]["note"], second["note"]);
  }
  const auto pinned = Events(lines, "model_pinned");
  ASSERT_EQ(pinned.size(), 1u);
  EXPECT_EQ(pinned[0]["version"], 1);
  EXPECT_EQ(Events(lines, "model_unpinned").size(), 1u);
}

TEST(ServerLogTest, RateLimitRefusalsAreSummarisedNotLoggedPerCall) {
  Capture capture(log::Level::kInfo);
  std::ostringstream& out = capture.out;
  auto options = TestOptions(FreshDir("server-log-rate"));
  options.access.calls_per_s = 0.001;
  options.access.call_burst = 1;
  options.access.limit_anonymous = true;
  options.access.refusal_log_interval = absl::Minutes(1);
  const absl::Time start = absl::Now();
  auto server = server::Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  Connection conn = Connect((*server)->port());
  constexpr int kCalls = 40;
  int refused = 0;
  for (int i = 0; i < kCalls; ++i) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::ListStrategiesResponse resp;
    const grpc::Status st = conn.selector->ListStrategies(&ctx, {}, &resp);
    if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++refused;
  }
  EXPECT_EQ(refused, kCalls - 1);
  (*server)->Shutdown();
  server->reset();  // the last interval's line is written when the access control goes
  const absl::Duration elapsed = absl::Now() - start;

  const auto lines = Parse(out.str());
  const auto summaries = Events(lines, "rate_limited");
  ASSERT_GE(summaries.size(), 1u);
  EXPECT_LE(static_cast<double>(summaries.size()), elapsed / absl::Minutes(1) + 1) << "more than one per interval";
  int total = 0;
  for (const json& j : summaries) {
    EXPECT_EQ(j["level"], "warn");
    EXPECT_EQ(j["nodes"], 1);
    EXPECT_EQ(j["top_node"], "peer:127.0.0.1");
    EXPECT_EQ(j["top_node_refused"], j["refused"]);
    EXPECT_EQ(j["nodes_capped"], false);
    EXPECT_EQ(j["interval_s"], 60);
    total += j["refused"].get<int>();
  }
  EXPECT_EQ(total, refused);
}

}  // namespace
}  // namespace accelsel::testing
