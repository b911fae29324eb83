// `accelsel` subcommands: select, report, import, strategies list|retire|unretire, model info|retrain|pin|rollback,
// nodes, quality, admin backup, health, eval.
#include "client/cli.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/cli_args.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "datasets/llm_inference_bench.h"
#include "eval/eval_main.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "util/progress.h"
#include "util/version.h"

namespace accelsel::client::cli {
namespace {

constexpr char kUsagePayload[] = "accelsel.cli/usage";
// Default deadline of the calls that work on the server while the CLI waits (model retrain, admin backup).
constexpr int64_t kLongCallDeadlineMs = 10 * 60 * 1000;

// Marks a status as a usage error (exit code 2).
absl::Status Usage(absl::Status status) {
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}
absl::Status Usage(absl::string_view message) { return Usage(absl::InvalidArgumentError(message)); }

using Handler = std::function<absl::Status(const ParsedFlags&, std::ostream&, std::ostream&)>;

struct Command {
  std::string name;
  std::string synopsis;  // after "accelsel "
  std::string summary;
  std::vector<FlagSpec> flags;
  Handler run;
};

std::vector<FlagSpec> WithCommon(std::vector<FlagSpec> own) {
  auto common = CommonFlags();
  own.insert(own.end(), common.begin(), common.end());
  return own;
}

std::string FormatValue(double v) {
  const double a = std::abs(v);
  if (a >= 100000) return absl::StrFormat("%.0f", v);
  if (a >= 1) return absl::StrFormat("%.1f", v);
  if (a == 0) return "0";
  return absl::StrFormat("%.3g", v);
}

std::string ObjectiveUnit(v1::Objective objective) {
  switch (objective) {
    case v1::OBJECTIVE_THROUGHPUT: return "tokens/s, higher is better";
    case v1::OBJECTIVE_COST: return "currency units per job, lower is better";
    default: return "ms, lower is better";
  }
}

std::string LayerName(v1::EvidenceLayer layer) {
  switch (layer) {
    case v1::EVIDENCE_LAYER_OBSERVED: return "observed";
    case v1::EVIDENCE_LAYER_MODEL: return "model";
    case v1::EVIDENCE_LAYER_PRIOR: return "prior";
    default: return "unknown";
  }
}

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

std::string Components(const v1::Strategy& s) {
  std::vector<std::string> parts;
  for (const auto& c : s.components()) {
    parts.push_back(absl::StrCat(c.method(), "=", c.value(), c.lossy() ? " (lossy)" : ""));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

// Stops a command on anything but positional arguments it expects.
absl::Status ExpectPositional(const ParsedFlags& flags, size_t count, const std::string& command) {
  if (flags.positional.size() > count) {
    return Usage(absl::StrCat("unexpected argument \"", flags.positional[count], "\" for '", command, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Client>> MakeClient(const ParsedFlags& flags) {
  auto options = ClientOptionsFromFlags(flags);
  if (!options.ok()) return Usage(options.status());
  return Client::Create(*options);
}

// "<RPC> on <server>: <CODE>: <message>": gRPC's own messages do not say which server was asked.
absl::Status ServerError(const std::string& what, const ClientOptions& options, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(what, " on ", options.target, ": ",
                                                  absl::StatusCodeToString(status.code()), ": ", status.message()));
}

// ---------------------------------------------------------------------------------------------------------
// select

// A uint32 flag value in [min, max]; a usage error naming the flag otherwise.
absl::StatusOr<uint32_t> FlagUint32(const ParsedFlags& flags, const std::string& name, uint32_t min, uint32_t max) {
  auto v = ParseUint("--" + name, flags.Get(name));
  if (!v.ok()) return Usage(v.status());
  if (*v < min || *v > max) return Usage(absl::StrCat("--", name, " must be between ", min, " and ", max));
  return static_cast<uint32_t>(*v);
}

// The task context of `select`: --context FILE.json, and/or --model, --accelerator, --count, --prompt-tokens,
// --output-tokens, --batch (which override the file's fields). Without a file, the names and the workload shape are
// required and the count defaults to 1; the server fills the descriptors it knows by name. Flags are checked before
// the file is read, so a usage error is reported as one.
absl::StatusOr<v1::TaskContext> SelectContext(const ParsedFlags& flags) {
  const bool from_file = flags.Has("context");
  if (!from_file) {
    for (const char* name : {"model", "accelerator", "prompt-tokens", "output-tokens", "batch"}) {
      if (!flags.Has(name)) return Usage(absl::StrCat("select without --context needs --", name));
    }
  }
  for (const char* name : {"model", "accelerator"}) {
    if (flags.Has(name) && flags.Get(name).empty()) return Usage(absl::StrCat("--", name, " must not be empty"));
  }
  // The server's own rules (docs/API.md, "Validation rules"), told here with the flag's name.
  auto number = [&](const std::string& name, uint32_t min, uint32_t max) -> absl::StatusOr<std::optional<uint32_t>> {
    if (!flags.Has(name)) return std::nullopt;
    auto v = FlagUint32(flags, name, min, max);
    if (!v.ok()) return v.status();
    return *v;
  };
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  auto count = number("count", 1, 65536);
  if (!count.ok()) return count.status();
  auto prompt = number("prompt-tokens", 0, kMax);
  if (!prompt.ok()) return prompt.status();
  auto output = number("output-tokens", 0, kMax);
  if (!output.ok()) return output.status();
  auto batch = number("batch", 1, kMax);
  if (!batch.ok()) return batch.status();

  v1::TaskContext context;
  if (from_file) {
    auto read = ReadTaskContextFile(flags.Get("context"));
    if (!read.ok()) return read.status();
    context = *std::move(read);
  } else {
    context.mutable_hardware()->set_count(1);
  }
  // Another model or accelerator than the file's: its descriptors belong to the file's, so they go, and the server
  // fills the named one's.
  if (flags.Has("model") && flags.Get("model") != context.model().name()) {
    context.mutable_model()->Clear();
    context.mutable_model()->set_name(flags.Get("model"));
  }
  if (flags.Has("accelerator") && flags.Get("accelerator") != context.hardware().accelerator()) {
    const uint32_t file_count = context.hardware().count();
    context.mutable_hardware()->Clear();
    context.mutable_hardware()->set_accelerator(flags.Get("accelerator"));
    context.mutable_hardware()->set_count(file_count);
  }
  if (*count) context.mutable_hardware()->set_count(**count);
  if (*prompt) context.mutable_workload()->set_prompt_tokens(**prompt);
  if (*output) context.mutable_workload()->set_output_tokens(**output);
  if (*batch) context.mutable_workload()->set_batch_size(**batch);
  return context;
}

absl::Status RunSelect(const ParsedFlags& flags, std::ostream& out, std::ostream&) {
  if (auto s = ExpectPositional(flags, 0, "select"); !s.ok()) return s;
  if (!flags.Has("context") && !flags.Has("model") && !flags.Has("accelerator")) {
    return Usage(
        "select needs --context FILE.json, or --model NAME --accelerator NAME --prompt-tokens N --output-tokens N "
        "--batch N");
  }
  // Flags first, so a usage error is reported as one before any file is read.
  v1::SelectAcceleratorRequest request;
  if (flags.Has("candidates")) {
    auto ids = ParseCandidates(flags.Get("candidates"));
    if (!ids.ok()) return Usage(ids.status());
    for (auto& id : *ids) request.add_candidate_ids(std::move(id));
  }
  auto objective = ParseObjective(flags.Get("objective", "e2e_latency"));
  if (!objective.ok()) return Usage(objective.status());
  request.set_objective(*objective);
  if (flags.Has("top-k")) {
    auto k = ParseUint("--top-k", flags.Get("top-k"));
    if (!k.ok()) return Usage(k.status());
    if (*k > 256) return Usage("--top-k must be at most 256 (0 = all)");
    request.set_top_k(static_cast<uint32_t>(*k));
  }
  request.set_allow_exploration(flags.Has("explore"));
  if (flags.Has("exclude-lossy")) request.mutable_constraints()->set_exclude_lossy(true);
  if (flags.Has("node")) request.set_node_id(flags.Get("node"));
  auto context = SelectContext(flags);
  if (!context.ok()) return context.status();
  *request.mutable_context() = *std::move(context);

  auto options = ClientOptionsFromFlags(flags);
  if (!options.ok()) return Usage(options.status());
  if (flags.Has("fallback-strategy")) {
    options->fallback_strategy = flags.Get("fallback-strategy");
    if (options->fallback_strategy.empty()) return Usage("--fallback-strategy needs a strategy id");
  }
  // One call per process: nothing earlier to answer from, so the fallback is the default strategy alone.
  options->fallback_cache_size = 0;
  auto client = Client::Create(*options);
  if (!client.ok()) return client.status();
  auto selection = (*client)->Select(request);
  if (!selection.ok()) return ServerError("SelectAccelerator", (*client)->options(), selection.status());
  if (!selection->fallback()) {
    out << (flags.Has("json") ? ToJson(selection->response) : FormatSelection(selection->response));
    return absl::OkStatus();
  }
  const absl::Status why = ServerError("SelectAccelerator", (*client)->options(), selection->error);
  if (flags.Has("json")) {
    // The response's mapping with two fields more; a server answer has neither, so it still parses as the proto.
    const std::string mapping = ToJson(selection->response);
    nlohmann::ordered_json json = nlohmann::ordered_json::parse(mapping, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object()) {
      out << mapping;
      return absl::OkStatus();
    }
    json["source"] = SelectSourceName(selection->source);
    json["fallback_error"] = std::string(why.message());
    out << json.dump(2) << "\n";
    return absl::OkStatus();
  }
  out << "fallback: server unreachable, no decision logged (" << why.message() << ")\n";
  if (selection->source == SelectSource::kDefault) {
    out << "strategy " << selection->response.recommendations(0).strategy().id()
        << " (--fallback-strategy: a default, not a ranking)\n";
  } else {
    out << FormatSelection(selection->response);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------
// report / import: stream reports through a TelemetrySender and count the acknowledgements

struct StreamOutcome {
  TelemetrySenderStats stats;
  std::vector<std::pair<std::string, std::string>> rejections;  // run_id, reason
};

// `label` names the progress line on `err` (acknowledged reports of all; terminals only, util/progress.h).
absl::StatusOr<StreamOutcome> StreamReports(const ClientOptions& options, std::vector<v1::RunReport> reports,
                                            absl::Duration timeout, const std::string& label, std::ostream& err) {
  auto made = MakeChannel(options);
  if (!made.ok()) return made.status();
  std::shared_ptr<grpc::Channel> channel = *std::move(made);
  // Fail fast when nobody listens, instead of retrying quietly until the flush timeout.
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Milliseconds(options.deadline_ms)))) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach server ", options.target, " within ", options.deadline_ms, " ms"));
  }
  absl::Mutex mu;
  StreamOutcome outcome;
  TelemetrySenderOptions sender_options;
  sender_options.capacity_reports = 1024;
  sender_options.block_when_full = true;
  sender_options.on_rejected = [&](const std::string& run_id, const std::string& reason) {
    absl::MutexLock lock(&mu);
    outcome.rejections.emplace_back(run_id, reason);
  };
  TelemetrySender sender(channel, options, std::move(sender_options));
  ProgressOptions progress_options;
  progress_options.out = &err;
  Progress progress(label, static_cast<int64_t>(reports.size()), progress_options);
  progress.StartTicker([&sender] {
    const TelemetrySenderStats st = sender.stats();
    return static_cast<int64_t>(st.durable + st.duplicate + st.rejected);
  });
  for (auto& r : reports) {
    if (auto s = sender.Send(std::move(r)); !s.ok()) return s;
  }
  absl::Status flushed = sender.Flush(timeout);
  if (flushed.ok()) {
    progress.Finish();
  } else {
    progress.Fail();
  }
  sender.Close();
  outcome.stats = sender.stats();
  if (!flushed.ok()) {
    return absl::Status(flushed.code(),
                        absl::StrCat(flushed.message(), " (stored ", outcome.stats.durable, ", duplicate ",
                                     outcome.stats.duplicate, ", rejected ", outcome.stats.rejected, " so far)"));
  }
  absl::MutexLock lock(&mu);
  return outcome;
}

void PrintOutcome(const StreamOutcome& o, std::ostream& out) {
  out << "stored " << o.stats.durable << ", duplicate " << o.stats.duplicate << ", rejected " << o.stats.rejected
      << "\n";
  for (const auto& [run_id, reason] : o.rejections) out << "rejected " << run_id << ": " << reason << "\n";
}

nlohmann::json OutcomeJson(const StreamOutcome& o) {
  nlohmann::json j;
  j["stored"] = o.stats.durable;
  j["duplicate"] = o.stats.duplicate;
  j["rejected"] = o.stats.rejected;
  j["rejections"] = nlohmann::json::array();
  for (const auto& [run_id, reason] : o.rejections) j["rejections"].push_back({{"run_id", run_id}, {"reason", reason}});
  return j;
}

absl::StatusOr<absl::Duration> FlushTimeout(const ParsedFlags& flags) {
  auto s = ParseUint("--timeout_s", flags.Get("timeout_s", "300"));
  if (!s.ok()) return Usage(s.status());
  if (*s == 0) return Usage("--timeout_s must be > 0");
  return absl::Seconds(static_cast<int64_t>(*s));
}

absl::Status RunReport(const ParsedFlags& flags, std::ostream& out, std::ostream& err) {
  if (auto s = ExpectPositional(flags, 0, "report"); !s.ok()) return s;
  if (!flags.Has("jsonl")) return Usage("report needs --jsonl FILE");
  auto options = ClientOptionsFromFlags(flags);
  if (!options.ok()) return Usage(options.status());
  auto timeout = FlushTimeout(flags);
  if (!timeout.ok()) return timeout.status();
  auto reports = ReadRunReportsJsonl(flags.Get("jsonl"));
  if (!reports.ok()) return reports.status();
  auto outcome = StreamReports(*options, *std::move(reports), *timeout, "report", err);
  if (!outcome.ok()) return outcome.status();
  if (flags.Has("json")) {
    out << OutcomeJson(*outcome).dump(2) << "\n";
  } else {
    PrintOutcome(*outcome, out);
  }
  return absl::OkStatus();
}

// data/llm-inference-bench/x.csv -> data/descriptors, when that folder exists.
std::string DefaultDescriptorsDir(const std::string& csv_path) {
  std::error_code ec;
  const auto dir = std::filesystem::path(csv_path).parent_path().parent_path() / "descriptors";
  return std::filesystem::is_directory(dir, ec) ? dir.string() : "";
}

void PrintImportStats(const datasets::LlmBenchImportStats& st, const std::string& descriptors_dir, std::ostream& out) {
  out << "read " << st.rows_read << " rows: " << st.runs << " runs (" << st.identical_rows_folded
      << " identical rows folded, " << st.rows_skipped << " malformed rows skipped)\n"
      << "repeated measurements kept as separate runs: " << st.repeated_task_rows
      << " rows repeat a task already seen (" << st.repeated_task_rows_canonical
      << " once label variants are folded)\n";
  for (const auto& why : st.skip_reasons) out << "  skipped " << why << "\n";
  for (const auto& [label, canonical] : st.label_mapping) {
    out << "label variant: \"" << label << "\" -> \"" << canonical << "\"\n";
  }
  out << "descriptors " << (descriptors_dir.empty() ? "(none)" : descriptors_dir) << ": " << st.rows_unknown_model
      << " rows with an unknown model, " << st.rows_unknown_accelerator << " with an unknown accelerator\n";
}

nlohmann::json ImportStatsJson(const datasets::LlmBenchImportStats& st) {
  nlohmann::json j;
  j["rows_read"] = st.rows_read;
  j["runs"] = st.runs;
  j["identical_rows_folded"] = st.identical_rows_folded;
  j["repeated_task_rows"] = st.repeated_task_rows;
  j["repeated_task_rows_canonical"] = st.repeated_task_rows_canonical;
  j["rows_skipped"] = st.rows_skipped;
  j["skip_reasons"] = st.skip_reasons;
  j["label_variant_rows"] = st.label_variant_rows;
  j["label_mapping"] = st.label_mapping;
  j["rows_unknown_model"] = st.rows_unknown_model;
  j["rows_unknown_accelerator"] = st.rows_unknown_accelerator;
  j["unknown_models"] = st.unknown_models;
  j["unknown_accelerators"] = st.unknown_accelerators;
  return j;
}

absl::Status RunImport(const ParsedFlags& flags, std::ostream& out, std::ostream& err) {
  if (auto s = ExpectPositional(flags, 0, "import"); !s.ok()) return s;
  if (!flags.Has("llm-inference-bench")) return Usage("import needs --llm-inference-bench CSV");
  const std::string csv = flags.Get("llm-inference-bench");
  const std::string descriptors = flags.Has("descriptors") ? flags.Get("descriptors") : DefaultDescriptorsDir(csv);
  auto options = ClientOptionsFromFlags(flags);
  if (!options.ok()) return Usage(options.status());
  auto timeout = FlushTimeout(flags);
  if (!timeout.ok()) return timeout.status();

  datasets::LlmBenchImportStats stats;
  auto runs = datasets::LoadLlmInferenceBench(csv, descriptors, &stats);
  if (!runs.ok()) return runs.status();
  const bool json = flags.Has("json");
  if (!json) PrintImportStats(stats, descriptors, out);
  if (flags.Has("dry-run")) {
    if (json) out << ImportStatsJson(stats).dump(2) << "\n";
    return absl::OkStatus();
  }

  auto client = Client::Create(*options);
  if (!client.ok()) return client.status();
  size_t created = 0;
  const auto strategies = datasets::LlmBenchStrategies(*runs);
  for (const auto& s : strategies) {
    v1::Strategy proto;
    ToProto(s, &proto);
    auto registered = (*client)->RegisterStrategy(proto);
    if (!registered.ok()) {
      return ServerError(absl::StrCat("RegisterStrategy ", s.id), *options, registered.status());
    }
    created += registered->created() ? 1 : 0;
  }
  if (!json) out << "strategies: " << strategies.size() << " registered (" << created << " new)\n";

  std::vector<v1::RunReport> reports;
  reports.reserve(runs->size());
  for (const auto& r : *runs) {
    v1::RunReport report;
    ToProto(r, &report);
    report.set_schema_version(1);
    reports.push_back(std::move(report));
  }
  auto outcome = StreamReports(*options, std::move(reports), *timeout, "import", err);
  if (!outcome.ok()) return outcome.status();
  if (json) {
    nlohmann::json j = ImportStatsJson(stats);
    j.update(OutcomeJson(*outcome));
    j["strategies_registered"] = strategies.size();
    j["strategies_created"] = created;
    out << j.dump(2) << "\n";
  } else {
    PrintOutcome(*outcome, out);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------
// strategies / model

absl::Status RunStrategies(const ParsedFlags& flags, std::ostream& out, std::ostream&) {
  static constexpr char kUsage[] =
      "usage: accelsel strategies list [--include-retired] [--json] | retire ID | unretire ID";
  if (flags.positional.empty()) return Usage(kUsage);
  const std::string& action = flags.positional[0];
  if (action == "retire" || action == "unretire") {
    if (flags.positional.size() < 2) return Usage(absl::StrCat("usage: accelsel strategies ", action, " ID"));
    if (auto s = ExpectPositional(flags, 2, "strategies " + action); !s.ok()) return s;
    auto client = MakeClient(flags);
    if (!client.ok()) return client.status();
    const std::string& id = flags.positional[1];
    const bool retire = action == "retire";
    // The two answers have the same shape; each is printed from its own message so --json shows the real one.
    auto print = [&](const auto& r) {
      if (flags.Has("json")) {
        out << ToJson(r);
      } else {
        out << "strategy " << r.strategy().id() << (r.changed() ? " is now " : " was already ")
            << (retire ? "retired" : "active") << "\n";
      }
    };
    if (retire) {
      auto r = (*client)->RetireStrategy(id);
      if (!r.ok()) return ServerError("RetireStrategy", (*client)->options(), r.status());
      print(*r);
    } else {
      auto r = (*client)->UnretireStrategy(id);
      if (!r.ok()) return ServerError("UnretireStrategy", (*client)->options(), r.status());
      print(*r);
    }
    return absl::OkStatus();
  }
  if (action != "list") return Usage(absl::StrCat("unknown strategies action \"", action, "\"; ", kUsage));
  if (auto s = ExpectPositional(flags, 1, "strategies list"); !s.ok()) return s;
  auto client = MakeClient(flags);
  if (!client.ok()) return client.status();
  const bool include_retired = flags.Has("include-retired");
  auto response = (*client)->ListStrategies(include_retired);
  if (!response.ok()) return ServerError("ListStrategies", (*client)->options(), response.status());
  if (flags.Has("json")) {
    out << ToJson(*response);
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"id", "components", "description"};
  if (include_retired) header.insert(header.begin() + 1, "state");
  for (const auto& s : response->strategies()) {
    rows.push_back({s.id(), Components(s), s.description()});
    if (include_retired) rows.back().insert(rows.back().begin() + 1, s.retired() ? "retired" : "active");
  }
  out << FormatTable(header, rows);
  out << response->strategies_size() << " strategies\n";
  return absl::OkStatus();
}

absl::Status RunHealth(const ParsedFlags& flags, std::ostream& out, std::ostream&) {
  if (auto s = ExpectPositional(flags, 0, "health"); !s.ok()) return s;
  auto client = MakeClient(flags);
  if (!client.ok()) return client.status();
  const std::string service = flags.Get("service");
  if (absl::Status st = (*client)->Health(service); !st.ok()) {
    return ServerError("Health", (*client)->options(), st);
  }
  out << "SERVING\n";
  return absl::OkStatus();
}

std::vector<std::string> VersionRow(const v1::ModelVersionInfo& v) {
  const auto& e = v.evaluation();
  return {absl::StrCat(v.version()),
          FormatTime(v.created_unix_ms()),
          v.learner().empty() ? "-" : v.learner(),
          absl::StrCat(v.training_rows()),
          v.promoted() ? "yes" : "no",
          e.holdout_rows() > 0 ? absl::StrFormat("%.3f", e.holdout_mape()) : "-",
          e.holdout_rows() > 0 ? absl::StrFormat("%.3f", e.holdout_top1()) : "-",
          v.note().empty() ? "-" : v.note()};
}

const std::vector<std::string> kVersionHeader = {"version",  "created", "learner", "rows",
                                                 "promoted", "mape",    "top1",    "note"};

std::string FormatEstimate(const v1::PolicyEstimate& e) {
  return absl::StrFormat("%.3f [%.3f, %.3f]", e.value(), e.low(), e.high());
}

// The off-policy figures of the versions that have them (a table), or "" when none has.
std::string FormatOffPolicy(const std::vector<const v1::ModelVersionInfo*>& versions) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::ModelVersionInfo* v : versions) {
    if (!v->evaluation().has_off_policy()) continue;
    const v1::OffPolicyEvaluation& o = v->evaluation().off_policy();
    rows.push_back({absl::StrCat(v->version()), absl::StrCat(o.decisions()), absl::StrCat(o.matched()),
                    absl::StrFormat("%.1f", o.effective_sample_size()), FormatEstimate(o.doubly_robust()),
                    FormatEstimate(o.baseline_doubly_robust()), FormatEstimate(o.doubly_robust_difference()),
                    o.used_for_promotion() ? "yes" : "no"});
  }
  if (rows.empty()) return "";
  return absl::StrCat(
      "off-policy evaluation on logged decisions (doubly robust reward per decision with 95% interval, higher is "
      "better; difference = candidate - baseline):\n",
      FormatTable({"version", "decisions", "matched", "ess", "dr", "baseline_dr", "difference", "used_for_promotion"},
                  rows));
}

absl::Status RunNodes(const ParsedFlags& flags, std::ostream& out, std::ostream&) {
  static constexpr char kUsage[] = "usage: accelsel nodes list | quarantine ID | release ID [--json]";
  if (flags.positional.empty()) return Usage(kUsage);
  const std::string& action = flags.positional[0];
  std::string node_id;
  if (action == "quarantine" || action == "release") {
    if (flags.positional.size() < 2) return Usage(absl::StrCat("usage: accelsel nodes ", action, " ID"));
    if (auto s = ExpectPositional(flags, 2, "nodes " + action); !s.ok()) return s;
    node_id = flags.positional[1];
  } else if (action == "list") {
    if (auto s = ExpectPositional(flags, 1, "nodes list"); !s.ok()) return s;
  } else {
    return Usage(absl::StrCat("unknown nodes action \"", action, "\"; ", kUsage));
  }
  auto client = MakeClient(flags);
  if (!client.ok()) return client.status();
  auto r = (*client)->QuarantineNode(node_id, action == "release");
  if (!r.ok()) return ServerError("QuarantineNode", (*client)->options(), r.status());
  if (flags.Has("json")) {
    out << ToJson(*r);
    return absl::OkStatus();
  }
  if (!node_id.empty()) {
    out << "node " << node_id << (r->changed() ? " is now " : " was already ")
        << (action == "quarantine" ? "quarantined" : "released") << "\n";
  }
  out << r->quarantined_size() << " quarantined node(s)" << (r->quarantined_size() > 0 ? ":" : "") << "\n";
  for (const std::string& id : r->quarantined()) out << "  " << id << "\n";
  return absl::OkStatus();
}

absl::Status RunAdmin(const ParsedFlags& flags, std::ostream& out, std::ostream&) {
  static constexpr char kUsage[] = "usage: accelsel admin backup DIR [--json]";
  if (flags.positional.empty() || flags.positional[0] != "backup") {
    return Usage(flags.positional.empty()
                     ? std::string(kUsage)
                     : absl::StrCat("unknown admin action \"", flags.positional[0], "\"; ", kUsage));
  }
  if (flags.positional.size() < 2) return Usage(kUsage);
  if (auto s = ExpectPositional(flags, 2, "admin backup"); !s.ok()) return s;
  auto client_options = ClientOptionsFromFlags(flags);
  if (!client_options.ok()) return Usage(client_options.status());
  // A backup to another file system copies the whole store while the call waits.
  if (!flags.Has("deadline_ms")) client_options->deadline_ms = kLongCallDeadlineMs;
  auto client = Client::Create(*client_options);
  if (!client.ok()) return client.status();
  auto r = (*client)->Backup(flags.positional[1]);
  if (!r.ok()) return ServerError("Backup", (*client)->options(), r.status());
  if (flags.Has("json")) {
    out << ToJson(*r);
    return absl::OkStatus();
  }
  out << "backup of " << r->runs() << " run(s) written to " << r->dir() << " on the server in "
      << absl::StrFormat("%.2f", r->seconds()) << " s\n"
      << "restore: start accelsel-server with --data_dir set to (a copy of) that folder\n";
  return absl::OkStatus();
}

absl::Status RunModel(const ParsedFlags& flags, std::ostream& out, std::ostream& err) {
  static constexpr char kUsage[] = "usage: accelsel model info|retrain|pin VERSION|rollback [--json]";
  if (flags.positional.empty()) return Usage(kUsage);
  const std::string& action = flags.positional[0];
  const bool json = flags.Has("json");
  if (action == "pin") {
    if (flags.positional.size() < 2) return Usage("usage: accelsel model pin VERSION (0 = unpin)");
    if (auto s = ExpectPositional(flags, 2, "model pin"); !s.ok()) return s;
  } else if (action == "info" || action == "retrain" || action == "rollback") {
    if (auto s = ExpectPositional(flags, 1, "model " + action); !s.ok()) return s;
  } else {
    return Usage(absl::StrCat("unknown model action \"", action, "\"; ", kUsage));
  }
  uint64_t version = 0;
  if (action == "pin") {
    auto v = ParseUint("VERSION", flags.positional[1]);
    if (!v.ok()) return Usage(v.status());
    version = *v;
  }
  auto client_options = ClientOptionsFromFlags(flags);
  if (!client_options.ok()) return Usage(client_options.status());
  // Retraining runs on the server while the call waits: give it minutes unless the caller chose a deadline.
  if (action == "retrain" && !flags.Has("deadline_ms")) client_options->deadline_ms = kLongCallDeadlineMs;
  auto client = Client::Create(*client_options);
  if (!client.ok()) return client.status();
  const ClientOptions& options = (*client)->options();

  if (action == "info") {
    auto r = (*client)->GetModelInfo();
    if (!r.ok()) return ServerError("GetModelInfo", options, r.status());
    if (json) {
      out << ToJson(*r);
      return absl::OkStatus();
    }
    out << FormatTable(
        {"field", "value"},
        {{"serving version", absl::StrCat(r->serving_version(), r->serving_version() == 0 ? " (statistics only)" : "",
                                          r->pinned() ? " (pinned)" : "")},
         {"runs stored", absl::StrCat(r->runs_stored())},
         {"strategies", absl::StrCat(r->strategies())}});
    if (r->history_size() > 0) {
      std::vector<std::vector<std::string>> rows;
      std::vector<const v1::ModelVersionInfo*> versions;
      for (const auto& v : r->history()) {
        rows.push_back(VersionRow(v));
        versions.push_back(&v);
      }
      out << "\n" << FormatTable(kVersionHeader, rows);
      if (std::string off_policy = FormatOffPolicy(versions); !off_policy.empty()) out << "\n" << off_policy;
    } else {
      out << "no trained model versions yet\n";
    }
  } else if (action == "retrain") {
    // One call that returns when training is done: a terminal sees the time it has taken so far.
    ProgressOptions progress_options;
    progress_options.out = &err;
    Progress progress("retrain", 0, progress_options);
    progress.StartTicker();
    auto r = (*client)->Retrain();
    if (!r.ok()) {
      progress.Fail();
      return ServerError("Retrain", options, r.status());
    }
    progress.Finish();
    if (json) {
      out << ToJson(*r);
      return absl::OkStatus();
    }
    out << FormatTable(kVersionHeader, {VersionRow(r->candidate())});
    const std::string off_policy = FormatOffPolicy({&r->candidate()});
    out << "\n"
        << (off_policy.empty() ? "off-policy evaluation: none (no logged decisions joined with their runs)\n"
                               : off_policy);
  } else if (action == "pin") {
    auto r = (*client)->PinModel(version);
    if (!r.ok()) return ServerError("PinModel", options, r.status());
    if (json) {
      out << ToJson(*r);
      return absl::OkStatus();
    }
    out << "serving version " << r->serving_version() << (version == 0 ? " (unpinned)\n" : " (pinned)\n");
  } else {
    auto r = (*client)->RollbackModel();
    if (!r.ok()) return ServerError("RollbackModel", options, r.status());
    if (json) {
      out << ToJson(*r);
      return absl::OkStatus();
    }
    out << "serving version " << r->serving_version() << "\n";
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------
// quality: live figures from the decision log joined with reported runs

constexpr int64_t kMaxQualityWindowMs = int64_t{30} * 24 * 3600 * 1000;  // the server's limit
constexpr uint64_t kMaxQualityNodes = 1000;                              // the server's limit

std::string Fraction(double v) { return absl::StrFormat("%.3f", v); }

// One slice's row; a figure whose base is empty prints "-" rather than a misleading 0.
std::vector<std::string> LiveQualityRow(const std::string& slice, const v1::LiveQuality& q,
                                        const v1::ModelEvaluation* holdout) {
  const bool scored = q.scored_reports() > 0;
  const bool joined = q.joined_reports() > 0;
  const bool has_holdout = holdout != nullptr && holdout->holdout_rows() > 0;
  return {slice,
          absl::StrCat(q.decisions()),
          absl::StrCat(q.joined_reports()),
          absl::StrCat(q.scored_reports()),
          scored ? Fraction(q.mape()) : "-",
          has_holdout ? Fraction(holdout->holdout_mape()) : "-",
          scored ? Fraction(q.coverage80()) : "-",
          has_holdout ? Fraction(holdout->holdout_coverage80()) : "-",
          joined ? Fraction(q.follow_rate()) : "-",
          q.decisions() > 0 ? Fraction(q.exploration_share()) : "-",
          joined ? absl::StrFormat("%.1f/%d", q.failures_predicted(), q.failures_seen()) : "-",
          joined ? Fraction(q.mean_regret_log()) : "-"};
}

absl::Status RunQuality(const ParsedFlags& flags, std::ostream& out, std::ostream&) {
  if (auto s = ExpectPositional(flags, 0, "quality"); !s.ok()) return s;
  int64_t window_ms = 0;  // the server's default, one hour
  if (flags.Has("window")) {
    auto window = ParseDuration("--window", flags.Get("window"));
    if (!window.ok()) return Usage(window.status());
    window_ms = absl::ToInt64Milliseconds(*window);
    if (window_ms < 1 || window_ms > kMaxQualityWindowMs) {
      return Usage(absl::StrCat("--window must be between 1ms and 720h (30 days), got ", flags.Get("window")));
    }
  }
  uint64_t top_nodes = 0;  // the server's default, 10
  if (flags.Has("top_nodes")) {
    auto n = ParseUint("--top_nodes", flags.Get("top_nodes"));
    if (!n.ok()) return Usage(n.status());
    if (*n > kMaxQualityNodes) return Usage(absl::StrCat("--top_nodes must be at most ", kMaxQualityNodes));
    top_nodes = *n;
  }
  auto client = MakeClient(flags);
  if (!client.ok()) return client.status();
  auto r = (*client)->GetLiveQuality(window_ms, static_cast<uint32_t>(top_nodes));
  if (!r.ok()) return ServerError("GetLiveQuality", (*client)->options(), r.status());
  out << (flags.Has("json") ? ToJson(*r) : FormatLiveQuality(*r));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------
// help and dispatch

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"select",
       "select (--context FILE.json | --model NAME --accelerator NAME [--count N] --prompt-tokens N "
       "--output-tokens N --batch N) [--candidates a,b] [--objective O] [--top-k N] [--explore] [--exclude-lossy] "
       "[--fallback-strategy ID] [--json]",
       "rank acceleration strategies for a task context (JSON mapping of accelsel.v1.TaskContext, or named by "
       "flags: the server fills the descriptors it knows by name)",
       WithCommon({{"context", true, "FILE",
                    "TaskContext as JSON, - = standard input (or name the task with the flags below)"},
                   {"model", true, "NAME",
                    "model name, e.g. meta-llama/Meta-Llama-3-8B (overrides the file's; another model than the "
                    "file's drops its model descriptors)"},
                   {"accelerator", true, "NAME",
                    "accelerator name, e.g. \"Nvidia H100 GPU\" (overrides the file's; another accelerator drops "
                    "its hardware descriptors but keeps the count)"},
                   {"count", true, "N", "accelerators used, 1 to 65536 (default: the file's, else 1)"},
                   {"prompt-tokens", true, "N", "input tokens per request (required without --context)"},
                   {"output-tokens", true, "N", "generated tokens per request (required without --context)"},
                   {"batch", true, "N", "concurrent sequences, at least 1 (required without --context)"},
                   {"candidates", true, "IDS", "comma-separated strategy ids (default: every catalogue strategy)"},
                   {"objective", true, "O", "e2e_latency (default) | ttft | tpot | throughput | cost"},
                   {"top-k", true, "N", "return the best N (default 0 = all, at most 256)"},
                   {"explore", false, "", "allow the server to explore (may place a less-known strategy first)"},
                   {"exclude-lossy", false, "",
                    "accept only output-preserving strategies: one with a lossy component (e.g. weights below 16 "
                    "bits, a quantised KV cache) violates \"exclude_lossy\" and ranks after every one that does not"},
                   {"node", true, "ID", "node id, for attribution"},
                   {"fallback-strategy", true, "ID",
                    "when the server cannot answer (UNAVAILABLE or DEADLINE_EXCEEDED after the retries), print this "
                    "strategy as the one answer, marked \"fallback: server unreachable\" (--json: \"source\": "
                    "\"default\" and \"fallback_error\"), and exit 0 instead of failing; other errors still fail"},
                   {"json", false, "", "print the response's JSON mapping"}}),
       RunSelect},
      {"report", "report --jsonl FILE [--timeout_s S] [--json]",
       "stream RunReports (one JSON mapping of accelsel.v1.RunReport per line); prints stored, duplicate and "
       "rejected counts and each rejection reason",
       WithCommon({{"jsonl", true, "FILE", "reports, one JSON object per line, - = standard input (required)"},
                   {"timeout_s", true, "S", "give up when not all acknowledged after S seconds (default 300)"},
                   {"json", false, "", "print the counts as JSON"}}),
       RunReport},
      {"import", "import --llm-inference-bench CSV [--descriptors DIR] [--dry-run] [--json]",
       "import LLM-Inference-Bench's main table: registers its strategies, streams its runs",
       WithCommon({{"llm-inference-bench", true, "CSV", "throughput_all_results.csv, - = standard input (required)"},
                   {"descriptors", true, "DIR",
                    "folder with models.csv and accelerators.csv (default: ../descriptors next to the CSV's folder)"},
                   {"dry-run", false, "", "only read and map the CSV; print what would be imported"},
                   {"timeout_s", true, "S", "give up when not all acknowledged after S seconds (default 300)"},
                   {"json", false, "", "print the counts as JSON"}}),
       RunImport},
      {"strategies", "strategies list [--include-retired] [--json] | retire ID | unretire ID",
       "list the strategy catalogue; retire a strategy (operator: no longer selected or listed, its runs stay) or "
       "restore it",
       WithCommon({{"include-retired", false, "", "list: also list retired strategies, with a state column"},
                   {"json", false, "", "print the response's JSON mapping"}}),
       RunStrategies},
      {"health", "health [--service NAME]",
       "standard gRPC health check; exit 0 and SERVING when the server serves (for container health checks)",
       WithCommon({{"service", true, "NAME", "service to check (default: the whole server)"}}), RunHealth},
      {"model", "model info|retrain|pin VERSION|rollback [--json]",
       "meta-model admin: serving version and history, retrain now (default deadline 10 min), pin a version "
       "(0 = unpin), roll back",
       WithCommon({{"json", false, "", "print the response's JSON mapping"}}), RunModel},
      {"nodes", "nodes list | quarantine ID | release ID [--json]",
       "operator: quarantine a node (its stored runs stop counting for statistics and training; they stay stored), "
       "release it, or list the quarantined nodes",
       WithCommon({{"json", false, "", "print the response's JSON mapping"}}), RunNodes},
      {"admin", "admin backup DIR [--json]",
       "operator: online backup of the whole store into DIR on the server's file system, inside its --backup_dir "
       "(default deadline 10 min)",
       WithCommon({{"json", false, "", "print the response's JSON mapping"}}), RunAdmin},
      {"quality", "quality [--window DURATION] [--top_nodes N] [--json]",
       "operator: live quality from the decision log joined with reported runs - overall, per model version beside "
       "its held-out figures, and the nodes that disagree most",
       WithCommon({{"window", true, "DURATION",
                    "how far back: 90s, 30m, 1h30m, 168h or whole days such as 7d (default 1h, at most 30d)"},
                   {"top_nodes", true, "N", "nodes to list (default 10, at most 1000)"},
                   {"json", false, "",
                    "print the response as JSON with the proto field names (joined_reports, mape, coverage80, ...) "
                    "and 64-bit counts as numbers"}}),
       RunQuality},
  };
  return commands;
}

std::string TopHelp() {
  std::string s =
      "accelsel - client of the accelsel acceleration-strategy selector\n\n"
      "usage: accelsel COMMAND [ARGS] [FLAGS]\n\ncommands:\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : Commands()) rows.push_back({"  " + c.name, c.summary});
  rows.push_back({"  eval", "offline evaluation of the selector on public data (accelsel eval --help)"});
  rows.push_back({"  help", "this help; accelsel COMMAND --help for a command's flags"});
  rows.push_back({"  --version", "print the version and exit"});
  std::string table = FormatTable({"", ""}, rows);
  table.erase(0, table.find('\n') + 1);  // drop the empty header line
  absl::StrAppend(&s, table);
  absl::StrAppend(&s, "\nflags every server command takes:\n");
  for (const auto& f : CommonFlags()) {
    absl::StrAppend(&s, "  --", f.name, f.takes_value ? " " + f.value_name : "", "\n      ", f.help, "\n");
  }
  absl::StrAppend(&s,
                  "\nexit status: 0 success, 1 error, 2 usage error; an error prints one line "
                  "\"accelsel: <reason>\" on stderr.\n");
  return s;
}

std::string CommandHelp(const Command& c) {
  std::string s = absl::StrCat("usage: accelsel ", c.synopsis, "\n\n", c.summary, "\n\nflags:\n");
  for (const auto& f : c.flags) {
    absl::StrAppend(&s, "  --", f.name, f.takes_value ? " " + f.value_name : "", "\n      ", f.help, "\n");
  }
  return s;
}

int Fail(const absl::Status& status, std::ostream& err) {
  std::string line(status.message());
  std::replace(line.begin(), line.end(), '\n', ' ');
  err << "accelsel: " << line << "\n";
  return status.GetPayload(kUsagePayload).has_value() ? 2 : 1;
}

// The proto3 JSON mapping writes 64-bit integers as strings (JavaScript numbers lose digits past 2^53); scripts
// compare counts, so this turns them back into numbers, field by field as the descriptor says. ordered_json keeps
// the keys in the mapping's order, which is the .proto's.
void Int64StringsToNumbers(const google::protobuf::Descriptor& descriptor, nlohmann::ordered_json* object) {
  using google::protobuf::FieldDescriptor;
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor* field = descriptor.field(i);
    auto it = object->find(field->name());
    if (it == object->end()) continue;
    const FieldDescriptor* value_field = field->is_map() ? field->message_type()->map_value() : field;
    auto convert = [value_field](nlohmann::ordered_json* v) {
      if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        if (v->is_object()) Int64StringsToNumbers(*value_field->message_type(), v);
        return;
      }
      if (!v->is_string()) return;
      if (int64_t n = 0; value_field->cpp_type() == FieldDescriptor::CPPTYPE_INT64 &&
                         absl::SimpleAtoi(v->get_ref<const std::string&>(), &n)) {
        *v = n;
      } else if (uint64_t u = 0; value_field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64 &&
                                 absl::SimpleAtoi(v->get_ref<const std::string&>(), &u)) {
        *v = u;
      }
    };
    if (field->is_map() || field->is_repeated()) {
      for (auto& element : *it) convert(&element);
    } else {
      convert(&*it);
    }
  }
}

// The proto3 JSON mapping with the proto field names, indented, default values included.
absl::StatusOr<std::string> JsonMapping(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::InternalError(status.message().as_string());
  return json;
}

std::string ErrorJson(const absl::Status& status) { return absl::StrCat("{\"error\": \"", status.message(), "\"}\n"); }

}  // namespace

std::string FormatTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      absl::StrAppend(&s, cell);
      if (i + 1 < width.size()) s.append(width[i] - cell.size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  std::string out = line(header);
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string FormatLiveQuality(const v1::GetLiveQualityResponse& r) {
  std::string s =
      absl::StrCat("live quality over the last ", absl::FormatDuration(absl::Milliseconds(r.window_ms())), "\n");
  // Cluster mode: the replicas whose decisions the window holds. A single server (replicas 1, no ids) and a server
  // older than the field (replicas 0) add no line.
  if (r.replica_ids_size() > 0) {
    absl::StrAppend(&s, "replicas: ", r.replicas(), " (", absl::StrJoin(r.replica_ids(), ", "), ")\n");
  }
  if (!r.decision_log_enabled()) {
    return s + "the server runs with --decision_log=false: no decisions are logged and every figure is 0\n";
  }
  const v1::LiveQuality& all = r.overall();
  if (all.decisions() == 0) return s + "no decisions logged in the window\n";
  if (r.truncated()) s += "note: the window held more decisions than one answer reads; the figures cover the newest\n";
  if (all.joined_reports() == 0) {
    absl::StrAppend(&s, all.decisions(), all.decisions() == 1 ? " decision" : " decisions",
                    " logged, none joined with a reported run yet (a run joins when its RunReport echoes the "
                    "answer's decision_id)\n");
  }
  std::vector<std::vector<std::string>> rows = {LiveQualityRow("all", all, nullptr)};
  bool statistics_only = false;
  for (const auto& v : r.versions()) {
    statistics_only = statistics_only || v.version() == 0;
    rows.push_back(LiveQualityRow(absl::StrCat("v", v.version()), v.live(), v.has_holdout() ? &v.holdout() : nullptr));
  }
  s += FormatTable({"slice", "decisions", "joined", "scored", "mape", "holdout_mape", "cov80", "holdout_cov80",
                    "follow", "explore", "failures_pred/seen", "regret_ln"},
                   rows);
  if (statistics_only) s += "v0 = answered from statistics only (no model served)\n";
  if (r.nodes_size() == 0) return s + "\nno node has a scored run yet\n";
  std::vector<std::vector<std::string>> nodes;
  for (const auto& n : r.nodes()) {
    nodes.push_back({n.node_id(), absl::StrCat(n.live().joined_reports()), absl::StrCat(n.live().scored_reports()),
                     Fraction(n.live().mape()), Fraction(n.live().coverage80())});
  }
  absl::StrAppend(&s, "\nnodes that disagree most with the model (highest mape first):\n",
                  FormatTable({"node", "joined", "scored", "mape", "cov80"}, nodes));
  return s;
}

std::string FormatSelection(const v1::SelectAcceleratorResponse& r) {
  std::string s =
      absl::StrCat("objective ", ObjectiveName(r.objective()), " (", ObjectiveUnit(r.objective()), ")   model version ",
                   r.model_version(), r.model_version() == 0 ? " (statistics only)" : "", "   decision ",
                   r.decision_id().empty() ? "-" : r.decision_id(), "\n");
  // Descriptors the server took from its tables, without the "context." every path starts with.
  std::string filled;
  if (r.filled_fields_size() > 0) {
    std::vector<absl::string_view> paths;
    for (const std::string& p : r.filled_fields()) paths.push_back(absl::StripPrefix(p, "context."));
    filled = absl::StrCat("filled from descriptor tables: ", absl::StrJoin(paths, ", "), "\n");
  }
  if (r.recommendations_size() == 0) return s + "no candidate strategies\n" + filled;
  std::vector<std::vector<std::string>> rows;
  bool any_explored = false;
  for (const auto& rec : r.recommendations()) {
    const bool unknown =
        rec.evidence_layer() == v1::EVIDENCE_LAYER_UNKNOWN || rec.evidence_layer() == v1::EVIDENCE_LAYER_UNSPECIFIED;
    const bool has_interval = rec.has_interval() && (rec.interval().low() != 0 || rec.interval().high() != 0);
    std::string meets = rec.meets_constraints() ? "yes" : "no";
    if (!rec.violated().empty()) absl::StrAppend(&meets, " (", absl::StrJoin(rec.violated(), ","), ")");
    any_explored = any_explored || rec.explored();
    rows.push_back(
        {absl::StrCat(rec.rank(), rec.explored() ? "*" : ""), rec.strategy().id(),
         unknown ? "-" : FormatValue(rec.expected_value()),
         has_interval ? absl::StrCat(FormatValue(rec.interval().low()), "-", FormatValue(rec.interval().high())) : "-",
         LayerName(rec.evidence_layer()), absl::StrCat(rec.evidence_count()), meets});
  }
  s += FormatTable({"rank", "strategy", "expected", "interval", "layer", "evidence", "meets"}, rows);
  if (any_explored) s += "* placed first by exploration\n";
  return s + filled;
}

std::string ToJson(const google::protobuf::Message& message) {
  auto text = JsonMapping(message);
  if (!text.ok()) return ErrorJson(text.status());
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return *text;
  Int64StringsToNumbers(*message.GetDescriptor(), &json);
  return json.dump(2) + "\n";
}

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << TopHelp();
    return 2;
  }
  const std::string& name = args[0];
  if (name == "help" || name == "--help" || name == "-h") {
    if (args.size() > 1) {
      for (const auto& c : Commands()) {
        if (c.name == args[1]) {
          out << CommandHelp(c);
          return 0;
        }
      }
    }
    out << TopHelp();
    return 0;
  }
  if (name == "--version") {
    out << util::VersionLine("accelsel") << "\n";
    return 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (name == "eval") {
    return accelsel::eval::EvalMain(rest, out, err);
  }
  for (const auto& c : Commands()) {
    if (c.name != name) continue;
    auto flags = ParseFlags(rest, c.flags);
    if (!flags.ok()) {
      return Fail(Usage(absl::StrCat(flags.status().message(), " (see accelsel ", c.name, " --help)")), err);
    }
    if (flags->Has("help")) {
      out << CommandHelp(c);
      return 0;
    }
    absl::Status status = c.run(*flags, out, err);
    return status.ok() ? 0 : Fail(status, err);
  }
  return Fail(Usage(absl::StrCat("unknown command \"", name, "\" (see accelsel --help)")), err);
}

}  // namespace accelsel::client::cli
