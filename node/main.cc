// accelsel-node: the node agent for llama.cpp on this CPU. Subcommands: catalogue (print or register the strategy
// catalogue), run (select, run, report each job), sweep (every strategy on every job into a table).
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "nlohmann/json.hpp"
#include "node/agent.h"
#include "node/catalogue.h"
#include "node/host.h"
#include "node/jobs.h"
#include "node/llama_engine.h"
#include "node/model_files.h"
#include "node/sweep.h"
#include "util/file.h"
#include "util/version.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "accelsel server address host:port, its replicas host:port,host:port,... (calls spread over them, moving "
          "on when one fails), or a gRPC URI such as dns:///name:port (client/README.md, \"Several replicas\")");
ABSL_FLAG(std::string, token_file, "",
          "file holding the bearer token (default: $ACCELSEL_TOKEN; none = no authorization header). `catalogue "
          "--register` needs an operator token when the server checks tokens");
ABSL_FLAG(std::string, jobs, "", "JSON-lines job file (node/README.md); required by run and sweep");
ABSL_FLAG(std::string, models, "build/node-engine/models", "folder of <model>.<FORMAT>.gguf files (make node-models)");
ABSL_FLAG(bool, register, false, "catalogue: register the strategies with the server instead of printing");
ABSL_FLAG(std::string, node_id, "", "run: node id in requests and reports (default: accelsel-node-<hostname>)");
ABSL_FLAG(bool, explore, false, "run: allow_exploration in SelectAccelerator (the server may try a runner-up)");
ABSL_FLAG(bool, exclude_lossy, false, "run: only strategies that keep the model's outputs (Constraints.exclude_lossy)");
ABSL_FLAG(int64_t, select_deadline_ms, 5000, "run: deadline of one SelectAccelerator call with its retries, ms");
ABSL_FLAG(absl::Duration, flush_timeout, absl::Seconds(60), "run: how long to wait at the end for report acks");
ABSL_FLAG(int, report_buffer, 1024,
          "run: reports held for the server at most; a report that finds it full is dropped and counted");
ABSL_FLAG(std::string, out, "", "sweep: the CSV table (resumed when it exists)");
ABSL_FLAG(int, repetitions, 3, "sweep: runs of each (job, strategy)");
ABSL_FLAG(std::string, strategies, "", "run, sweep: comma-separated strategy ids (default: every one valid here)");
ABSL_FLAG(bool, verbose, false, "print llama.cpp's whole log (default: its warnings and errors)");

namespace accelsel::node {
namespace {

int Fail(const std::string& what) {
  std::cerr << "accelsel-node: " << what << "\n";
  return 1;
}

absl::StatusOr<std::string> Token() {
  const std::string path = absl::GetFlag(FLAGS_token_file);
  if (path.empty()) {
    const char* env = std::getenv("ACCELSEL_TOKEN");
    return env != nullptr ? std::string(env) : std::string();
  }
  auto text = util::ReadFile(path);
  if (!text.ok()) return text.status();
  const std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("--token_file ", path, ": empty"));
  return token;
}

absl::StatusOr<std::unique_ptr<client::Client>> MakeClient() {
  client::ClientOptions options;
  auto target = client::ChannelTarget(absl::GetFlag(FLAGS_server), "--server");
  if (!target.ok()) return target.status();
  options.target = *std::move(target);
  options.deadline_ms = absl::GetFlag(FLAGS_select_deadline_ms);
  auto token = Token();
  if (!token.ok()) return token.status();
  options.bearer_token = *token;
  return client::Client::Create(options);
}

// This host's catalogue, or the ids --strategies names (each must be in it).
absl::StatusOr<std::vector<v1::Strategy>> Strategies() {
  std::vector<v1::Strategy> all = StrategiesForHost(HostCores());
  const std::string wanted = absl::GetFlag(FLAGS_strategies);
  if (wanted.empty()) return all;
  std::vector<v1::Strategy> out;
  for (absl::string_view id : absl::StrSplit(wanted, ',', absl::SkipWhitespace())) {
    id = absl::StripAsciiWhitespace(id);
    auto it = std::find_if(all.begin(), all.end(), [&](const v1::Strategy& s) { return s.id() == id; });
    if (it == all.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--strategies: \"", id, "\" is not in this host's catalogue (see accelsel-node catalogue)"));
    }
    out.push_back(*it);
  }
  return out;
}

int CatalogueCommand() {
  auto strategies = Strategies();
  if (!strategies.ok()) return Fail(strategies.status().ToString());
  if (!absl::GetFlag(FLAGS_register)) {
    for (const v1::Strategy& s : *strategies) {
      std::cout << s.id() << (IsLossy(s) ? "  lossy  " : "  exact  ") << s.description() << "\n";
    }
    return 0;
  }
  auto client = MakeClient();
  if (!client.ok()) return Fail(client.status().ToString());
  auto created = RegisterStrategies(**client, *strategies);
  if (!created.ok()) return Fail(created.status().ToString());
  std::cout << "registered " << strategies->size() << " strategies (" << *created << " new) with "
            << absl::GetFlag(FLAGS_server) << "\n";
  return 0;
}

std::string DefaultNodeId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') return "accelsel-node";
  std::string id = absl::StrCat("accelsel-node-", host);
  for (char& c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '-';
  }
  return id.substr(0, 128);
}

int RunCommand() {
  auto jobs = ReadJobsFile(absl::GetFlag(FLAGS_jobs));
  if (!jobs.ok()) return Fail(jobs.status().ToString());
  auto strategies = Strategies();
  if (!strategies.ok()) return Fail(strategies.status().ToString());
  auto client = MakeClient();
  if (!client.ok()) return Fail(client.status().ToString());
  client::TelemetrySenderOptions sender_options;
  if (absl::GetFlag(FLAGS_report_buffer) < 1) return Fail("--report_buffer: must be >= 1");
  sender_options.capacity_reports = static_cast<size_t>(absl::GetFlag(FLAGS_report_buffer));
  // Never wait for room: a node whose server is gone keeps running its jobs and drops the reports that do not fit.
  sender_options.block_when_full = false;
  client::TelemetrySender sender((*client)->channel(), (*client)->options(), sender_options);
  LlamaEngine engine(absl::GetFlag(FLAGS_verbose));
  ModelFiles models(absl::GetFlag(FLAGS_models));
  AgentOptions options;
  options.node_id = absl::GetFlag(FLAGS_node_id).empty() ? DefaultNodeId() : absl::GetFlag(FLAGS_node_id);
  options.allow_exploration = absl::GetFlag(FLAGS_explore);
  options.exclude_lossy = absl::GetFlag(FLAGS_exclude_lossy);
  Agent agent(client->get(), &sender, &engine, &models, HostHardware(), *strategies, options);
  size_t ok = 0, fallbacks = 0, cached = 0, dropped = 0;
  for (const Job& job : *jobs) {
    const JobOutcome o = agent.RunJob(job);
    ok += o.metrics.status == v1::RUN_STATUS_OK ? 1 : 0;
    fallbacks += o.select_source == "default" ? 1 : 0;
    cached += o.select_source == "cache" ? 1 : 0;
    dropped += o.report_error.empty() ? 0 : 1;
    nlohmann::json line = {{"job", o.job_id},
                           {"strategy", o.strategy_id},
                           {"decision_id", o.decision_id},
                           {"select_source", o.select_source},
                           {"status", v1::RunStatus_Name(o.metrics.status)},
                           {"ttft_ms", o.metrics.ttft_ms},
                           {"tpot_ms", o.metrics.tpot_ms},
                           {"e2e_latency_ms", o.metrics.e2e_latency_ms},
                           {"throughput_tokens_per_s", o.metrics.throughput_tokens_per_s},
                           {"peak_memory_gb", o.metrics.peak_memory_gb},
                           {"context_ms", o.metrics.context_ms},
                           {"run_id", o.run_id}};
    if (!o.metrics.message.empty()) line["message"] = o.metrics.message;
    if (!o.select_error.empty()) line["select_error"] = o.select_error;
    if (!o.report_error.empty()) line["report_error"] = o.report_error;
    std::cout << line.dump() << std::endl;
  }
  const absl::Status flushed = sender.Flush(absl::GetFlag(FLAGS_flush_timeout));
  const client::TelemetrySenderStats st = sender.stats();
  nlohmann::json summary = {{"jobs", jobs->size()},
                            {"ok", ok},
                            {"default_fallbacks", fallbacks},
                            {"cache_fallbacks", cached},
                            {"reports_durable", st.durable},
                            {"reports_duplicate", st.duplicate},
                            {"reports_rejected", st.rejected},
                            {"reports_unacknowledged", st.buffered},
                            {"reports_dropped", dropped}};
  if (!flushed.ok()) summary["flush_error"] = flushed.ToString();
  std::cout << nlohmann::json{{"summary", summary}}.dump() << std::endl;
  return 0;
}

int SweepCommand() {
  auto jobs = ReadJobsFile(absl::GetFlag(FLAGS_jobs));
  if (!jobs.ok()) return Fail(jobs.status().ToString());
  auto strategies = Strategies();
  if (!strategies.ok()) return Fail(strategies.status().ToString());
  LlamaEngine engine(absl::GetFlag(FLAGS_verbose));
  ModelFiles models(absl::GetFlag(FLAGS_models));
  SweepOptions options;
  options.out_csv = absl::GetFlag(FLAGS_out);
  options.repetitions = absl::GetFlag(FLAGS_repetitions);
  auto stats = RunSweep(*jobs, *strategies, engine, models, HostHardware(), options, &std::cerr);
  if (!stats.ok()) return Fail(stats.status().ToString());
  std::cout << "sweep " << options.out_csv << ": " << stats->rows_written << " rows written, " << stats->rows_present
            << " already there, " << stats->failed_runs << " failed runs, " << stats->missing_files
            << " (job, strategy) pairs without a model file\n";
  return 0;
}

}  // namespace
}  // namespace accelsel::node

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "accelsel-node catalogue [--register --server ADDR --token_file F]\n"
      "  accelsel-node run --server ADDR --jobs FILE.jsonl --models DIR [--explore] [--exclude_lossy]\n"
      "  accelsel-node sweep --jobs FILE.jsonl --out TABLE.csv --models DIR --repetitions N");
  accelsel::util::SetFlagsVersion("accelsel-node");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  const std::string command = args[1];
  if (command == "catalogue") return accelsel::node::CatalogueCommand();
  if (command == "run") return accelsel::node::RunCommand();
  if (command == "sweep") return accelsel::node::SweepCommand();
  std::cerr << "accelsel-node: unknown command \"" << command << "\"\n" << absl::ProgramUsageMessage() << "\n";
  return 2;
}
