// Argument handling and the run of accelsel-netsim; see netsim.h.
#include "sim/netsim.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli_args.h"
#include "client/client.h"
#include "nlohmann/json.hpp"
#include "sim/driver.h"
#include "sim/policies.h"
#include "sim/report.h"
#include "sim/server_process.h"
#include "util/progress.h"
#include "util/version.h"

#ifndef ACCELSEL_NETSIM_PLOT_SCRIPT
#define ACCELSEL_NETSIM_PLOT_SCRIPT "sim/plot_netsim.py"
#endif

namespace accelsel::sim {
namespace {

using client::cli::FlagSpec;
using nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> kSpecs = {
      {"llm-inference-bench", true, "CSV", "LLM-Inference-Bench main table (the product mapping)"},
      {"descriptors", true, "DIR", "descriptor tables (default data/descriptors)"},
      {"csv", true, "FILE", "a generic measured table"},
      {"task-cols", true, "C1,C2", "--csv: columns that make a task"},
      {"strategy-cols", true, "S1,S2", "--csv: columns that make a strategy"},
      {"target-col", true, "T", "--csv: the measured value"},
      {"maximize", false, "", "--csv: larger target values are better"},
      {"hardware-col", true, "H", "--csv: column that becomes hardware.accelerator"},
      {"model-col", true, "M", "--csv: column that becomes model.name"},
      {"nodes", true, "N", "simulated nodes (default 1000)"},
      {"jobs", true, "M", "jobs (default 20000)"},
      {"seed", true, "S", "seed of the job sequence, noise, baselines and the spawned server (default 1)"},
      {"noise", true, "SIGMA", "multiplicative log-normal noise of a measurement (default 0.05)"},
      {"warm", true, "FRACTION", "share of the table's cells reported before the first job (default 0: cold)"},
      {"late-hardware", true, "NAME@FRACTION", "nodes of that hardware join after that share of the jobs"},
      {"liars", true, "K", "nodes that report every strategy but one worse, at 10x the honest rate"},
      {"liar-factor", true, "F", "how much worse liars report (default 3)"},
      {"drift", true, "STRATEGY@FRACTIONxFACTOR", "the strategy becomes FACTOR times worse from then on"},
      {"churn", false, "", "a tenth of the nodes leave and as many join at every twentieth of the run"},
      {"server", true, "ADDR",
       "the server to play against: host:port, its replicas host:port,host:port,... or a gRPC URI (dns:///name:port)"},
      {"spawn-server", false, "", "start accelsel-server of this build on an empty temporary store"},
      {"auth", false, "", "--spawn-server: authentication on, an operator token and one token per node"},
      {"server-bin", true, "PATH", "--spawn-server: the binary (default: beside accelsel-netsim)"},
      {"tmp-dir", true, "DIR", "--spawn-server: parent of the temporary store (default $TMPDIR or /tmp)"},
      {"server-retrain-interval", true, "DURATION", "--spawn-server, free-running: the server's timer (default 10s)"},
      {"server-retrain-min-new-runs", true, "N", "--spawn-server, free-running: retrain after N runs (default 1000)"},
      {"deterministic", false, "", "one job at a time, retrain at fixed job counts: same seeds, same summary"},
      {"retrain-every-jobs", true, "K", "call Retrain after every K jobs (default 1000 with --deterministic, else 0)"},
      {"all-candidates", false, "", "offer every strategy, not only those measured for the task"},
      {"no-exploration", false, "", "select without exploration"},
      {"rate", true, "JOBS_PER_S",
       "free-running: jobs started per second by the whole network (default 250; 0 = "
       "no pacing)"},
      {"concurrency", true, "N", "free-running: jobs in flight at once (default 16)"},
      {"channels", true, "N", "free-running: connections, each with one shared report stream (default 4)"},
      {"epsilon", true, "E", "exploration rate of the epsilon_greedy baseline (default 0.1)"},
      {"json", false, "", "one JSON object per window, then the summary object"},
      {"window", true, "JOBS", "jobs per window (default 1000)"},
      {"plots", true, "DIR", "write netsim.jsonl and PNG plots there (/usr/bin/python3 with matplotlib)"},
      {"plot-script", true, "PATH", "the plotting script (default sim/plot_netsim.py of the source tree)"},
      {"version", false, "", "print the version and exit"},
      {"help", false, "", "this text"},
  };
  return kSpecs;
}

absl::Status Bad(const std::string& flag, const std::string& rule, const std::string& got) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", rule, " (got '", got, "')"));
}

absl::Status ParseCount(const client::cli::ParsedFlags& f, const std::string& flag, uint64_t lo, uint64_t hi,
                        uint64_t* out) {
  if (!f.Has(flag)) return absl::OkStatus();
  const std::string v = f.Get(flag);
  if (!absl::SimpleAtoi(v, out) || *out < lo || *out > hi) {
    return Bad(flag, absl::StrCat("must be an integer in [", lo, ", ", hi, "]"), v);
  }
  return absl::OkStatus();
}

absl::Status ParseReal(const client::cli::ParsedFlags& f, const std::string& flag, double lo, double hi, bool open_low,
                       double* out) {
  if (!f.Has(flag)) return absl::OkStatus();
  const std::string v = f.Get(flag);
  if (!absl::SimpleAtod(v, out) || !std::isfinite(*out) || *out > hi || *out < lo || (open_low && *out == lo)) {
    return Bad(flag, absl::StrCat("must be a number in ", open_low ? "(" : "[", lo, ", ", hi, "]"), v);
  }
  return absl::OkStatus();
}

std::vector<std::string> SplitColumns(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(p));
  }
  return out;
}

}  // namespace

const char* NetsimUsage() {
  return "usage: accelsel-netsim (--llm-inference-bench CSV [--descriptors DIR] |\n"
         "                        --csv FILE --task-cols C --strategy-cols S --target-col T [--maximize]\n"
         "                        [--hardware-col H] [--model-col M])\n"
         "                       (--spawn-server [--auth] | --server ADDR) [--nodes 1000] [--jobs 20000] [--seed 1]\n"
         "                       [--noise 0.05] [--warm F] [--late-hardware NAME@F] [--liars K --liar-factor F]\n"
         "                       [--drift STRATEGY@FxFACTOR] [--churn] [--deterministic] [--retrain-every-jobs K]\n"
         "                       [--rate 250] [--all-candidates] [--no-exploration] [--json] [--window 1000]\n"
         "                       [--plots DIR]\n"
         "Run with --help for every flag; docs/SIMULATION.md explains the scenarios and the output.\n";
}

absl::StatusOr<NetsimConfig> ParseNetsimArgs(const std::vector<std::string>& args) {
  auto parsed = client::cli::ParseFlags(args, Specs());
  if (!parsed.ok()) return parsed.status();
  const client::cli::ParsedFlags& f = *parsed;
  if (!f.positional.empty())
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", f.positional[0], "'"));
  NetsimConfig c;
  if (f.Has("help") || f.Has("version")) return c;
  c.llm_bench = f.Get("llm-inference-bench");
  c.descriptors = f.Get("descriptors", c.descriptors);
  c.csv.path = f.Get("csv");
  if (c.llm_bench.empty() == c.csv.path.empty()) {
    return absl::InvalidArgumentError("--llm-inference-bench or --csv: give exactly one of them");
  }
  for (const char* flag : {"task-cols", "strategy-cols", "target-col", "maximize", "hardware-col", "model-col"}) {
    if (f.Has(flag) && c.csv.path.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " needs --csv"));
  }
  if (!c.csv.path.empty()) {
    c.csv.task_cols = SplitColumns(f.Get("task-cols"));
    c.csv.strategy_cols = SplitColumns(f.Get("strategy-cols"));
    c.csv.target_col = f.Get("target-col");
    c.csv.maximize = f.Has("maximize");
    c.csv.hardware_col = f.Get("hardware-col");
    c.csv.model_col = f.Get("model-col");
    if (c.csv.task_cols.empty() && c.csv.hardware_col.empty() && c.csv.model_col.empty()) {
      return absl::InvalidArgumentError("--csv needs --task-cols (or --hardware-col / --model-col)");
    }
    if (c.csv.strategy_cols.empty()) return absl::InvalidArgumentError("--csv needs --strategy-cols");
    if (c.csv.target_col.empty()) return absl::InvalidArgumentError("--csv needs --target-col");
    if (!c.csv.hardware_col.empty()) c.csv.task_cols.push_back(c.csv.hardware_col);
    if (!c.csv.model_col.empty()) c.csv.task_cols.push_back(c.csv.model_col);
  }
  Scenario& s = c.scenario;
  uint64_t nodes = s.nodes, liars = 0, concurrency = c.concurrency, channels = c.channels;
  absl::Status st;
  if (st = ParseCount(f, "nodes", 1, 1000000, &nodes); !st.ok()) return st;
  if (st = ParseCount(f, "jobs", 1, 100000000, &s.jobs); !st.ok()) return st;
  if (f.Has("seed") && !absl::SimpleAtoi(f.Get("seed"), &s.seed)) {
    return Bad("seed", "must be an unsigned 64-bit integer", f.Get("seed"));
  }
  if (st = ParseReal(f, "noise", 0, 2, false, &s.noise); !st.ok()) return st;
  if (st = ParseReal(f, "warm", 0, 1, false, &s.warm_fraction); !st.ok()) return st;
  if (f.Has("late-hardware")) {
    if (st = ParseLateHardware(f.Get("late-hardware"), &s); !st.ok()) return st;
  }
  if (st = ParseCount(f, "liars", 0, 1000000, &liars); !st.ok()) return st;
  if (st = ParseReal(f, "liar-factor", 0, 1e6, true, &s.liar_factor); !st.ok()) return st;
  if (f.Has("liar-factor") && liars == 0) return absl::InvalidArgumentError("--liar-factor needs --liars K >= 1");
  if (liars >= nodes) return Bad("liars", absl::StrCat("must be below --nodes (", nodes, ")"), f.Get("liars"));
  if (f.Has("drift")) {
    if (st = ParseDrift(f.Get("drift"), &s); !st.ok()) return st;
  }
  s.churn = f.Has("churn");
  s.nodes = static_cast<uint32_t>(nodes);
  s.liars = static_cast<uint32_t>(liars);

  c.server = f.Get("server");
  c.spawn_server = f.Has("spawn-server");
  if (c.server.empty() == !c.spawn_server) {
    return absl::InvalidArgumentError("--server or --spawn-server: give exactly one of them");
  }
  if (!c.spawn_server) {
    auto target = client::ChannelTarget(c.server, "--server");
    if (!target.ok()) return target.status();
    c.server = *std::move(target);
  }
  c.auth = f.Has("auth");
  for (const char* flag : {"auth", "server-bin", "tmp-dir", "server-retrain-interval", "server-retrain-min-new-runs"}) {
    if (f.Has(flag) && !c.spawn_server)
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " needs --spawn-server"));
  }
  c.server_bin = f.Get("server-bin");
  c.tmp_dir = f.Get("tmp-dir");
  if (f.Has("server-retrain-interval")) {
    absl::Duration d;
    const std::string v = f.Get("server-retrain-interval");
    if (!absl::ParseDuration(v, &d) || d < absl::ZeroDuration()) {
      return Bad("server-retrain-interval", "must be a duration such as 10s or 500ms, >= 0", v);
    }
    c.server_retrain_interval = v;
  }
  if (st = ParseCount(f, "server-retrain-min-new-runs", 0, UINT64_MAX, &c.server_retrain_min_new_runs); !st.ok()) {
    return st;
  }
  c.deterministic = f.Has("deterministic");
  if (f.Has("retrain-every-jobs")) {
    uint64_t k = 0;
    if (st = ParseCount(f, "retrain-every-jobs", 0, UINT64_MAX, &k); !st.ok()) return st;
    c.retrain_every_jobs = k;
  }
  c.all_candidates = f.Has("all-candidates");
  c.exploration = !f.Has("no-exploration");
  if (st = ParseCount(f, "concurrency", 1, 1024, &concurrency); !st.ok()) return st;
  if (st = ParseCount(f, "channels", 1, 256, &channels); !st.ok()) return st;
  if (st = ParseReal(f, "rate", 0, 1e7, false, &c.rate); !st.ok()) return st;
  if (c.deterministic && (f.Has("concurrency") || f.Has("channels") || f.Has("rate"))) {
    return absl::InvalidArgumentError(
        "--concurrency, --channels and --rate do not apply with --deterministic (one job at a time)");
  }
  c.concurrency = static_cast<int>(concurrency);
  c.channels = static_cast<int>(channels);
  if (st = ParseReal(f, "epsilon", 0, 1, false, &c.epsilon); !st.ok()) return st;
  c.json = f.Has("json");
  if (st = ParseCount(f, "window", 1, 100000000, &c.window); !st.ok()) return st;
  c.plots_dir = f.Get("plots");
  c.plot_script = f.Get("plot-script");
  if (f.Has("plot-script") && c.plots_dir.empty()) return absl::InvalidArgumentError("--plot-script needs --plots");
  return c;
}

namespace {

json ConfigJson(const NetsimConfig& c, const SimTable& table, uint64_t retrain_every, bool server_seeded) {
  const Scenario& s = c.scenario;
  json j;
  j["input"] = c.llm_bench.empty() ? c.csv.path : c.llm_bench;
  j["tasks"] = table.tasks.size();
  j["strategies"] = table.strategies.size();
  j["hardware"] = table.hardware.size();
  j["maximize"] = table.maximize;
  j["nodes"] = s.nodes;
  j["jobs"] = s.jobs;
  j["seed"] = s.seed;
  j["noise"] = s.noise;
  j["warm"] = s.warm_fraction;
  j["mode"] = c.deterministic ? "deterministic" : "free-running";
  j["retrain_every_jobs"] = retrain_every;
  j["exploration"] = c.exploration;
  j["all_candidates"] = c.all_candidates;
  j["server_seeded"] = server_seeded;
  if (!s.late_hardware.empty()) j["late_hardware"] = absl::StrCat(s.late_hardware, "@", s.late_fraction);
  if (s.liars > 0) j["liars"] = {{"nodes", s.liars}, {"factor", s.liar_factor}};
  if (!s.drift_strategy.empty()) {
    j["drift"] = absl::StrCat(s.drift_strategy, "@", s.drift_fraction, "x", s.drift_factor);
  }
  j["churn"] = s.churn;
  j["auth"] = c.auth;
  if (!c.deterministic) {
    j["rate"] = c.rate;
    j["concurrency"] = c.concurrency;
    j["channels"] = c.channels;
  }
  return j;
}

// Run ids feed the server's stable hashes (e.g. which runs poisoning resistance keeps), so a run on a fresh store
// names them from the seed alone; against a shared server a random part keeps repeated runs from colliding.
// A token file for the spawned server: one operator and every node (churned-in ones included), random tokens.
std::string MakeTokens(const Network& net, DriverOptions* d) {
  std::random_device rd;
  auto token = [&rd] { return absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd()); };
  d->operator_token = token();
  std::string file = absl::StrCat("# accelsel-netsim\n", d->operator_token, " operator sim-operator\n");
  for (const SimNode& node : net.nodes()) {
    d->node_tokens.push_back(token());
    absl::StrAppend(&file, d->node_tokens.back(), " node ", node.id, "\n");
  }
  return file;
}

std::string RunTag(uint64_t seed, bool fresh_store) {
  if (fresh_store) return absl::StrFormat("sim%llu", static_cast<unsigned long long>(seed));
  std::random_device rd;
  return absl::StrFormat("sim%llu-%08x", static_cast<unsigned long long>(seed), rd());
}

}  // namespace

int NetsimMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto config = ParseNetsimArgs(args);
  if (!config.ok()) {
    err << "accelsel-netsim: " << config.status().message() << "\n";
    return 2;
  }
  for (const std::string& a : args) {
    if (a == "--version") {
      out << util::VersionLine("accelsel-netsim") << "\n";
      return 0;
    }
    if (a == "--help" || a == "-h") {
      out << NetsimUsage() << "\nflags:\n";
      for (const FlagSpec& s : Specs()) {
        out << absl::StrFormat("  --%-28s %s\n", s.name + (s.value_name.empty() ? "" : " " + s.value_name), s.help);
      }
      return 0;
    }
  }
  NetsimConfig& c = *config;
  absl::StatusOr<SimTable> table =
      c.llm_bench.empty() ? LoadCsvTable(c.csv) : LoadLlmBenchTable(c.llm_bench, c.descriptors);
  if (!table.ok()) {
    err << "accelsel-netsim: " << table.status().message() << "\n";
    return 1;
  }
  auto net = Network::Build(*table, c.scenario);
  if (!net.ok()) {
    err << "accelsel-netsim: " << net.status().message() << "\n";
    return 2;
  }
  const std::vector<std::vector<uint32_t>> baselines =
      RunBaselines(*net, BaselineOptions{.all_candidates = c.all_candidates, .epsilon = c.epsilon});

  DriverOptions d;
  d.deterministic = c.deterministic;
  d.retrain_every_jobs = c.retrain_every_jobs.value_or(c.deterministic ? 1000 : 0);
  d.all_candidates = c.all_candidates;
  d.exploration = c.exploration;
  d.concurrency = c.concurrency;
  d.channels = c.channels;
  d.jobs_per_s = c.deterministic ? 0 : c.rate;
  d.run_tag = RunTag(c.scenario.seed, c.spawn_server);
  d.sample_every_jobs = c.window;
  bool server_seeded = false;
  std::unique_ptr<ServerProcess> server;
  if (c.spawn_server) {
    ServerProcessOptions so;
    so.binary = c.server_bin.empty() ? SelfDirectory() + "/accelsel-server" : c.server_bin;
    const char* tmp = std::getenv("TMPDIR");
    so.tmp_parent = !c.tmp_dir.empty() ? c.tmp_dir : (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    so.descriptors_dir = c.descriptors;
    // A simulation does not need its runs on disk past a power cut; the WAL still holds them past a crash.
    so.extra_flags.push_back("--sync_writes=false");
    if (c.deterministic) {
      so.extra_flags.push_back("--trainer=false");  // netsim retrains through the RPC at fixed job counts
    } else {
      so.extra_flags.push_back(absl::StrCat("--retrain_interval=", c.server_retrain_interval));
      so.extra_flags.push_back(absl::StrCat("--retrain_min_new_runs=", c.server_retrain_min_new_runs));
    }
    if (c.auth) so.auth_tokens = MakeTokens(*net, &d);
    server_seeded = ServerHasFlag(so.binary, "seed");
    if (server_seeded) so.extra_flags.push_back(absl::StrCat("--seed=", c.scenario.seed));
    auto started = ServerProcess::Start(so);
    if (!started.ok()) {
      err << "accelsel-netsim: " << started.status().message() << "\n";
      return 1;
    }
    server = std::move(*started);
    d.address = server->address();
    ServerProcess* p = server.get();
    d.rss = [p] { return p->RssBytes(); };
  } else {
    d.address = c.server;
  }
  ProgressOptions progress_options;
  progress_options.out = &err;
  Progress progress("netsim", static_cast<int64_t>(net->jobs().size()), progress_options);
  d.progress = &progress;
  auto result = RunAgainstServer(*net, d);
  if (result.ok()) {
    progress.Finish();
  } else {
    progress.Fail();
  }
  if (server) server->Stop();
  if (!result.ok()) {
    err << "accelsel-netsim: " << result.status().message() << "\n";
    return result.status().code() == absl::StatusCode::kCancelled ? 130 : 1;
  }
  Scorer scorer(*net, baselines, *result);
  const std::vector<json> windows = scorer.Windows(c.window);
  const json summary = scorer.Summary(ConfigJson(c, *table, d.retrain_every_jobs, server_seeded), c.window);
  if (c.json) {
    for (const json& w : windows) out << w.dump() << "\n";
    out << summary.dump() << "\n";
  } else {
    out << HumanSummary(summary);
  }
  out.flush();
  if (!result->errors.empty()) {
    err << "accelsel-netsim: " << result->select_errors << " select errors; first: " << result->errors.front() << "\n";
  }
  if (!c.plots_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(c.plots_dir, ec);
    const std::string jsonl = (std::filesystem::path(c.plots_dir) / "netsim.jsonl").string();
    {
      std::ofstream file(jsonl);
      for (const json& w : windows) file << w.dump() << "\n";
      file << summary.dump() << "\n";
      if (!file) {
        err << "accelsel-netsim: cannot write " << jsonl << "\n";
        return 1;
      }
    }
    const std::string script = c.plot_script.empty() ? ACCELSEL_NETSIM_PLOT_SCRIPT : c.plot_script;
    auto rc = RunProcess({kPython, script, jsonl, c.plots_dir});
    if (!rc.ok() || *rc != 0) {
      err << "accelsel-netsim: plotting failed (" << (rc.ok() ? absl::StrCat("exit ", *rc) : rc.status().ToString())
          << "); the data is in " << jsonl << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace accelsel::sim
