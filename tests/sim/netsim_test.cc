// accelsel-netsim end to end: the binary against a server of the same build that it spawns, on a small generated
// table with a known best engine per task (tests/sim/known_best_table.h).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/sim/known_best_table.h"

namespace accelsel::sim {
namespace {

using nlohmann::json;

std::string TmpDir() {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("ACCELSEL_TEST_TMPDIR");
  const std::filesystem::path p =
      std::filesystem::path(base ? base : "/tmp") / absl::StrCat("sim_netsim_test-", getpid(), "-", counter++);
  std::filesystem::create_directories(p);
  return p.string();
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct NetsimRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::vector<json> lines;  // stdout parsed as JSON lines (with --json)
  json summary;             // the last line's "summary"
};

// progress: run with ACCELSEL_PROGRESS=1 (the progress line on stderr although it is a file), else with the
// environment's setting (tests/test_env.cc: 0).
NetsimRun Netsim(const std::vector<std::string>& args, bool progress = false) {
  const std::string dir = TmpDir();
  std::string cmd = absl::StrCat(progress ? "ACCELSEL_PROGRESS=1 " : "",
                                 Quote(std::string(std::getenv("ACCELSEL_BIN_DIR")) + "/accelsel-netsim"));
  for (const std::string& a : args) absl::StrAppend(&cmd, " ", Quote(a));
  absl::StrAppend(&cmd, " --tmp-dir ", Quote(dir));  // keeps the spawned server's store under the test folder
  absl::StrAppend(&cmd, " >", Quote(dir + "/out"), " 2>", Quote(dir + "/err"));
  const int status = std::system(cmd.c_str());
  NetsimRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(dir + "/out");
  r.err = ReadAll(dir + "/err");
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) r.lines.push_back(j);
  }
  if (!r.lines.empty() && r.lines.back().contains("summary")) r.summary = r.lines.back()["summary"];
  std::filesystem::remove_all(dir);
  return r;
}

class NetsimTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = TmpDir();
    table_ = dir + "/known_best.csv";
    testing::WriteKnownBestTable(table_, /*by_batch=*/false);
    table_by_batch_ = dir + "/known_best_by_batch.csv";
    testing::WriteKnownBestTable(table_by_batch_, /*by_batch=*/true);
  }
  // The known-best table as a --csv input, spawned server, JSON output.
  static std::vector<std::string> Base(bool maximize = false, bool by_batch = false) {
    std::vector<std::string> a = {"--csv",           by_batch ? table_by_batch_ : table_,
                                  "--task-cols",     "batch",
                                  "--strategy-cols", "engine",
                                  "--target-col",    maximize ? "throughput" : "latency_ms",
                                  "--hardware-col",  "hardware",
                                  "--model-col",     "model",
                                  "--spawn-server",  "--json"};
    if (maximize) a.push_back("--maximize");
    return a;
  }
  static std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  static double Regret(const json& segment, const std::string& policy) {
    return segment.at(policy).at("regret_geomean").get<double>();
  }
  static void ExpectConverged(const NetsimRun& r) {
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(r.summary.is_object()) << r.out;
    const json& after = r.summary["after_warmup"];
    EXPECT_EQ(after["jobs"].get<int>(), 2400);
    EXPECT_LE(Regret(after, "accelsel"), 1.05) << after.dump();
    EXPECT_LE(Regret(r.summary["last_10pct"], "accelsel"), 1.03) << r.summary["last_10pct"].dump();
    EXPECT_LT(Regret(after, "accelsel"), Regret(after, "sbs")) << after.dump();
    EXPECT_LT(Regret(after, "accelsel"), Regret(after, "random")) << after.dump();
    EXPECT_DOUBLE_EQ(Regret(after, "oracle"), 1.0);
  }
  static std::string table_;
  static std::string table_by_batch_;
};
std::string NetsimTest::table_;
std::string NetsimTest::table_by_batch_;

// The simulated network must find each task's known best engine: after the first 20 % of jobs accelsel's first
// places (exploration included) are close to the oracle and better than the single best engine and random.
TEST_F(NetsimTest, ConvergesToTheKnownBestEngine) {
  NetsimRun r = Netsim(With(Base(), {"--deterministic", "--nodes", "60", "--jobs", "3000", "--retrain-every-jobs",
                                     "500", "--window", "500", "--seed", "3"}));
  ExpectConverged(r);
  // Everything reported was acknowledged and stored.
  const json& runs = r.summary["runs"];
  EXPECT_EQ(runs["reported"].get<int>(), 3000);
  EXPECT_EQ(runs["acknowledged_durable"].get<int>(), 3000);
  EXPECT_EQ(runs["stored_by_this_run"].get<int>(), 3000);
  EXPECT_EQ(runs["lost"].get<int>(), 0);
  EXPECT_EQ(r.summary["server"]["retrains_requested"].get<int>(), 5);
  EXPECT_GE(r.summary["server"]["serving_version"].get<int>(), 1);
  // One window per 500 jobs, then the summary.
  ASSERT_EQ(r.lines.size(), 7u);
  EXPECT_EQ(r.lines[5]["jobs"].get<int>(), 3000);
  EXPECT_TRUE(r.lines[5]["regret_geomean"].contains("epsilon_greedy"));
}

// The same where the best engine on gpu-c depends on the batch size, which a --csv table can only carry in
// context.extra: tasks that differ there are different tasks and must be told apart.
TEST_F(NetsimTest, ConvergesWhenTheBestDependsOnAnExtraColumn) {
  ExpectConverged(Netsim(With(Base(/*maximize=*/false, /*by_batch=*/true),
                              {"--deterministic", "--nodes", "60", "--jobs", "3000", "--retrain-every-jobs", "500",
                               "--window", "500", "--seed", "3"})));
}

TEST_F(NetsimTest, DeterministicRunsRepeat) {
  const auto args = With(Base(), {"--deterministic", "--nodes", "40", "--jobs", "900", "--retrain-every-jobs", "300",
                                  "--window", "300", "--warm", "0.2", "--seed", "11"});
  NetsimRun a = Netsim(args, /*progress=*/true);  // the progress line must not change stdout
  NetsimRun b = Netsim(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const size_t last = a.err.rfind("\rnetsim: ");
  ASSERT_NE(last, std::string::npos) << a.err;
  EXPECT_EQ(a.err.substr(last).rfind("\rnetsim: 900/900 (100%) ", 0), 0u) << a.err;
  EXPECT_NE(a.err.find(", done in ", last), std::string::npos) << a.err;
  EXPECT_EQ(b.err.find('\r'), std::string::npos) << b.err;
  EXPECT_EQ(a.out.find('\r'), std::string::npos);
  ASSERT_EQ(a.lines.size(), b.lines.size());
  for (size_t i = 0; i + 1 < a.lines.size(); ++i) {
    json wa = a.lines[i], wb = b.lines[i];
    wa.erase("server_rss_mb");
    wb.erase("server_rss_mb");
    EXPECT_EQ(wa, wb) << "window " << i;
  }
  json sa = a.summary, sb = b.summary;
  sa.erase("load");  // wall-clock figures
  sb.erase("load");
  EXPECT_EQ(sa, sb);
  EXPECT_TRUE(sa["config"]["server_seeded"].get<bool>()) << "accelsel-server has no --seed: runs cannot repeat";
}

// Every scenario flag at once on a small deterministic run: each leaves its section in the summary.
TEST_F(NetsimTest, ScenarioFlags) {
  NetsimRun r = Netsim(With(Base(), {"--deterministic",
                                     "--nodes",
                                     "60",
                                     "--jobs",
                                     "2000",
                                     "--retrain-every-jobs",
                                     "500",
                                     "--warm",
                                     "0.3",
                                     "--late-hardware",
                                     "gpu-c@0.5",
                                     "--liars",
                                     "3",
                                     "--liar-factor",
                                     "3",
                                     "--drift",
                                     "alpha@0.6x3",
                                     "--churn",
                                     "--window",
                                     "500"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json& s = r.summary;
  ASSERT_TRUE(s.is_object()) << r.out;
  // Warm: 30 % of the 47 cells of gpu-a and gpu-b reported before the first job.
  EXPECT_EQ(s["runs"]["reported"].get<int>(), 2000 + 14);
  EXPECT_EQ(s["runs"]["lost"].get<int>(), 0);
  EXPECT_EQ(s["late_hardware"]["hardware"], "gpu-c");
  EXPECT_EQ(s["late_hardware"]["joins_at_job"].get<int>(), 1000);
  EXPECT_GT(s["late_hardware"]["first_10pct_after_join"]["jobs"].get<int>(), 0);
  EXPECT_GT(s["late_hardware"]["last_10pct"]["jobs"].get<int>(), 0);
  EXPECT_EQ(s["liars"]["nodes"].get<int>(), 3);
  EXPECT_GT(s["liars"]["liar_jobs"].get<int>(), 100);
  EXPECT_TRUE(s["liars"]["favourite_first_not_best_last_10pct"].contains("accelsel"));
  EXPECT_EQ(s["honest_jobs"].get<int>() + s["liars"]["liar_jobs"].get<int>(), 2000);
  EXPECT_EQ(s["drift"]["strategy"], "alpha");
  EXPECT_EQ(s["drift"]["at_job"].get<int>(), 1200);
  EXPECT_TRUE(s["drift"].contains("accelsel_recovered_within_jobs"));
  EXPECT_GT(s["churn"]["nodes_left"].get<int>(), 0);
  // Windows carry the scenario's figures too.
  EXPECT_TRUE(r.lines[2].contains("late_hardware"));
  EXPECT_TRUE(r.lines[2].contains("liars"));
  EXPECT_TRUE(r.lines[2]["drift_active"].get<bool>());
}

// Free-running: workers on several connections, the server's own trainer; every acknowledged run is stored.
TEST_F(NetsimTest, FreeRunningWithAllCandidates) {
  NetsimRun r = Netsim(
      With(Base(), {"--nodes", "200", "--jobs", "2000", "--rate", "0", "--concurrency", "8", "--channels", "3",
                    "--all-candidates", "--server-retrain-interval", "1s", "--server-retrain-min-new-runs", "500"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json& s = r.summary;
  EXPECT_EQ(s["config"]["mode"], "free-running");
  EXPECT_EQ(s["runs"]["select_errors"].get<int>(), 0);
  EXPECT_EQ(s["runs"]["reported"].get<int>(), 2000);
  EXPECT_EQ(s["runs"]["acknowledged_durable"].get<int>(), 2000);
  EXPECT_EQ(s["runs"]["stored_by_this_run"].get<int>(), 2000);
  EXPECT_GT(s["load"]["selects_per_s"].get<double>(), 0);
  EXPECT_GT(s["load"]["server_rss_mb"]["max"].get<double>(), 0);
}

// With authentication each node calls with its own token on its own report stream (200 streams over several
// connections), and the catalogue is registered with the operator token.
TEST_F(NetsimTest, AuthenticatedNodes) {
  NetsimRun r = Netsim(With(Base(), {"--auth", "--nodes", "200", "--jobs", "1000", "--rate", "0", "--liars", "2"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json& s = r.summary;
  EXPECT_TRUE(s["config"]["auth"].get<bool>());
  EXPECT_EQ(s["runs"]["select_errors"].get<int>(), 0);
  EXPECT_EQ(s["runs"]["rejected"].get<int>(), 0);
  EXPECT_EQ(s["runs"]["acknowledged_durable"].get<int>(), 1000);
  EXPECT_EQ(s["runs"]["stored_by_this_run"].get<int>(), 1000);
}

TEST_F(NetsimTest, MaximizeWithoutExploration) {
  NetsimRun r = Netsim(With(Base(/*maximize=*/true), {"--deterministic", "--nodes", "30", "--jobs", "600",
                                                      "--retrain-every-jobs", "300", "--no-exploration"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.summary["config"]["maximize"].get<bool>());
  EXPECT_DOUBLE_EQ(r.summary["exploration_share"]["whole_run"].get<double>(), 0.0);
  EXPECT_GE(Regret(r.summary["whole_run"], "accelsel"), 1.0);
  EXPECT_DOUBLE_EQ(Regret(r.summary["whole_run"], "oracle"), 1.0);
}

TEST_F(NetsimTest, LlmInferenceBenchInputAndHumanTable) {
  const std::string src = std::getenv("ACCELSEL_SOURCE_DIR");
  const std::string dir = TmpDir();
  NetsimRun r =
      Netsim({"--llm-inference-bench", src + "/tests/fixtures/llm_bench_small.csv", "--descriptors",
              src + "/data/descriptors", "--spawn-server", "--deterministic", "--nodes", "10", "--jobs", "200"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "accelsel ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "epsilon_greedy")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "0 lost")) << r.out;
}

TEST_F(NetsimTest, Plots) {
  if (std::system("/usr/bin/python3 -c 'import matplotlib' 2>/dev/null") != 0) {
    GTEST_SKIP() << "Debian's python3-matplotlib is not installed (make sim installs it)";
  }
  const std::string dir = TmpDir();
  NetsimRun r = Netsim(With(
      Base(), {"--deterministic", "--nodes", "30", "--jobs", "600", "--late-hardware", "gpu-b@0.5", "--plots", dir}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* png : {"regret.png", "exploration.png", "late_hardware.png"}) {
    EXPECT_GT(std::filesystem::file_size(std::filesystem::path(dir) / png), 1000u) << png;
  }
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(dir) / "netsim.jsonl"));
  std::filesystem::remove_all(dir);
}

// Bad arguments: exit 2 and one line on stderr that names the flag.
TEST_F(NetsimTest, BadArgumentsGiveOneLineErrors) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--spawn-server", "--jobs", "10"}, "--llm-inference-bench or --csv"},
      {With(Base(), {"--jobs", "-3"}), "--jobs"},
      {With(Base(), {"--nodes", "abc"}), "--nodes"},
      {With(Base(), {"--noise", "nan"}), "--noise"},
      {With(Base(), {"--warm", "1.5"}), "--warm"},
      {With(Base(), {"--late-hardware", "gpu-c"}), "--late-hardware"},
      {With(Base(), {"--late-hardware", "tpu@0.5"}), "--late-hardware"},
      {With(Base(), {"--drift", "alpha@0.5"}), "--drift"},
      {With(Base(), {"--drift", "nosuch@0.5x3"}), "--drift"},
      {With(Base(), {"--liars", "1000000"}), "--liars"},
      {With(Base(), {"--window", "0"}), "--window"},
      {With(Base(), {"--rate", "-1"}), "--rate"},
      {With(Base(), {"--frobnicate"}), "--frobnicate"},
      {With(Base(), {"--server", "127.0.0.1:1"}), "--server or --spawn-server"},
      {{"--csv", table_, "--task-cols", "batch", "--strategy-cols", "engine", "--target-col", "latency_ms", "--server",
        "127.0.0.1:1", "--auth"},
       "--auth needs --spawn-server"},
      {{"--csv", table_, "--task-cols", "batch", "--strategy-cols", "engine", "--target-col", "latency_ms", "--server",
        "127.0.0.1:1,"},
       "--server: \"127.0.0.1:1,\": an empty item"},
  };
  for (const auto& [args, flag] : cases) {
    NetsimRun r = Netsim(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, "accelsel-netsim: ")) << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, flag)) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

}  // namespace
}  // namespace accelsel::sim
