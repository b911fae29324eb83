// Resumable strategy x job x repetition sweep into an LLM-Inference-Bench-shaped CSV.
#include "node/sweep.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "node/catalogue.h"
#include "util/csv.h"
#include "util/file.h"
#include "util/status_macros.h"

namespace accelsel::node {
namespace {

namespace fs = std::filesystem;

// (Job, Model, Input Output Length, Batch Size, Framework, Repetition): a row's identity. The job's shape is part of
// it so that a job file edited between runs does not pass off old rows as the new job's.
using RowKey = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>;

const std::vector<std::string> kModelColumns = {"name",           "family",          "parameters_b", "layers",
                                                "hidden_size",    "attention_heads", "kv_heads",     "experts",
                                                "active_experts", "weight_dtype",    "source",       "note"};
const std::vector<std::string> kAcceleratorColumns = {
    "name", "canonical_name", "memory_gb", "memory_bandwidth_gbps", "peak_tflops", "interconnect", "source", "note"};

// Free text made safe for the one CSV reader without quoting: its separators, quotes and escapes become spaces.
std::string PlainText(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c == ',' || c == '"' || c == '\'' || c == '\\' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

std::string Number(double v) { return absl::StrCat(v); }

std::string StatusName(v1::RunStatus status) {
  switch (status) {
    case v1::RUN_STATUS_OK: return "OK";
    case v1::RUN_STATUS_OOM: return "OOM";
    case v1::RUN_STATUS_TIMEOUT: return "TIMEOUT";
    case v1::RUN_STATUS_CRASH: return "CRASH";
    case v1::RUN_STATUS_NOT_APPLICABLE: return "NOT_APPLICABLE";
    default: return "UNSPECIFIED";
  }
}

std::string ComponentValue(const v1::Strategy& s, const std::string& method) {
  for (const auto& c : s.components()) {
    if (c.method() == method) return c.value();
  }
  return "";
}

// Drops a last line cut short by an interruption, so the file parses and that run is made again.
absl::Status DropPartialLastLine(const std::string& path) {
  auto text = util::ReadFile(path);
  if (!text.ok()) return text.status();
  if (text->empty() || text->back() == '\n') return absl::OkStatus();
  const size_t keep = text->rfind('\n') == std::string::npos ? 0 : text->rfind('\n') + 1;
  std::error_code ec;
  fs::resize_file(path, keep, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot truncate ", path, ": ", ec.message()));
  return absl::OkStatus();
}

// The keys of the rows already in `path` (none when it does not exist or is empty).
absl::StatusOr<std::set<RowKey>> ExistingRows(const std::string& path) {
  std::set<RowKey> keys;
  std::error_code ec;
  if (!fs::exists(path, ec) || fs::file_size(path, ec) == 0) return keys;
  ACCELSEL_RETURN_IF_ERROR(DropPartialLastLine(path));
  auto table = util::ReadCsvFile(path);
  if (!table.ok()) return absl::Status(table.status().code(), absl::StrCat(path, ": ", table.status().message()));
  if (table->header != SweepHeader()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": header is not this sweep's (",
                                                      absl::StrJoin(SweepHeader(), ","),
                                                      "); give another --out instead of mixing tables"));
  }
  auto col = [&](const char* name) { return static_cast<size_t>(table->Column(name)); };
  const size_t job = col("Job"), model = col("Model"), length = col("Input Output Length"), batch = col("Batch Size"),
               framework = col("Framework"), rep = col("Repetition");
  for (const auto& row : table->rows) {
    keys.insert({row[job], row[model], row[length], row[batch], row[framework], row[rep]});
  }
  return keys;
}

// Writes a descriptor table (header `columns`, first column the name) holding `rows` plus the rows of the existing
// file whose name `rows` lacks; through a temporary file and a rename, so a reader never sees half a table.
absl::Status MergeDescriptorTable(const std::string& path, const std::vector<std::string>& columns,
                                  std::map<std::string, std::vector<std::string>> rows) {
  std::error_code ec;
  if (fs::exists(path, ec)) {
    auto table = util::ReadCsvFile(path);
    if (!table.ok()) return absl::Status(table.status().code(), absl::StrCat(path, ": ", table.status().message()));
    if (table->header != columns) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": header is not ", absl::StrJoin(columns, ",")));
    }
    for (auto& row : table->rows) rows.emplace(row[0], std::move(row));
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << absl::StrJoin(columns, ",") << "\n";
    for (const auto& [name, fields] : rows) out << absl::StrJoin(fields, ",") << "\n";
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status WriteMachineFiles(const std::vector<Job>& jobs, Engine& engine, ModelFiles& models,
                               const v1::HardwareDescriptor& host, const SweepOptions& options) {
  const fs::path csv(options.out_csv);
  const fs::path dir = csv.parent_path().empty() ? fs::path(".") : csv.parent_path();
  const std::string today = absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone());
  std::map<std::string, std::vector<std::string>> model_rows;
  for (const Job& job : jobs) {
    if (model_rows.count(job.model) > 0) continue;
    auto m = models.Describe(job.model);
    if (!m.ok()) continue;  // no F16 file: its rows are skipped as missing files too
    model_rows[job.model] = {m->name(),
                             m->family(),
                             Number(m->parameters_b()),
                             absl::StrCat(m->layers()),
                             absl::StrCat(m->hidden_size()),
                             absl::StrCat(m->attention_heads()),
                             absl::StrCat(m->kv_heads()),
                             absl::StrCat(m->experts()),
                             absl::StrCat(m->active_experts()),
                             m->weight_dtype(),
                             PlainText(absl::StrCat("GGUF metadata of ", models.Path(job.model, WeightFormat::kF16))),
                             "random weights (node/make_models.py)"};
  }
  ACCELSEL_RETURN_IF_ERROR(MergeDescriptorTable((dir / "models.csv").string(), kModelColumns, model_rows));
  ACCELSEL_RETURN_IF_ERROR(
      MergeDescriptorTable((dir / "accelerators.csv").string(), kAcceleratorColumns,
                           {{host.accelerator(),
                             {PlainText(host.accelerator()), PlainText(host.accelerator()), Number(host.memory_gb()),
                              Number(host.memory_bandwidth_gbps()), Number(host.peak_tflops()), host.interconnect(),
                              absl::StrCat("accelsel-node sweep ", today,
                                           " (/proc/cpuinfo and /proc/meminfo; bandwidth measured by memcpy)"),
                              "the whole CPU as one device"}}}));

  nlohmann::json machine = {{"hardware",
                             {{"accelerator", host.accelerator()},
                              {"count", host.count()},
                              {"memory_gb", host.memory_gb()},
                              {"memory_bandwidth_gbps", host.memory_bandwidth_gbps()},
                              {"peak_tflops", host.peak_tflops()},
                              {"interconnect", host.interconnect()}}},
                            {"engine", engine.Describe()},
                            {"models_dir", models.dir()},
                            {"repetitions", options.repetitions},
                            {"written_utc", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone())},
                            {"note", "rewritten at the start of every (resumed) sweep into this table"}};
  fs::path machine_path = csv;
  machine_path.replace_extension(".machine.json");
  std::ofstream out(machine_path, std::ios::trunc);
  out << machine.dump(2) << "\n";
  if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", machine_path.string()));
  return absl::OkStatus();
}

std::vector<std::string> Row(const Job& job, const v1::Strategy& strategy, int rep, const JobMetrics& m,
                             const v1::HardwareDescriptor& host) {
  const bool ok = m.status == v1::RUN_STATUS_OK && m.e2e_latency_ms > 0;
  const double latency_s = m.e2e_latency_ms / 1000.0;
  const double all_tokens = static_cast<double>(job.parallel) * (job.prompt_tokens + job.output_tokens);
  auto if_ok = [&](double v) { return ok ? Number(v) : std::string(); };
  return {PlainText(host.accelerator()),
          "1",
          strategy.id(),
          job.model,
          absl::StrCat(job.prompt_tokens),
          absl::StrCat(job.parallel),
          if_ok(latency_s),
          ok ? Number(all_tokens / latency_s) : std::string(),
          job.id,
          absl::StrCat(rep),
          StatusName(m.status),
          PlainText(m.message),
          if_ok(m.ttft_ms),
          if_ok(m.tpot_ms),
          if_ok(m.throughput_tokens_per_s),
          if_ok(m.peak_memory_gb),
          if_ok(m.context_ms),
          absl::StrCat(job.prompt_tokens),
          absl::StrCat(job.output_tokens),
          ComponentValue(strategy, "quant"),
          ComponentValue(strategy, "kv_cache"),
          ComponentValue(strategy, "flash_attn"),
          ComponentValue(strategy, "threads"),
          ComponentValue(strategy, "batch")};
}

}  // namespace

std::vector<std::string> SweepHeader() {
  return {"Hardware",       "Num of Hardware", "Framework",     "Model",         "Input Output Length",
          "Batch Size",     "Latency",         "Throughput",    "Job",           "Repetition",
          "Status",         "Message",         "TTFT ms",       "TPOT ms",       "Generated Tokens per s",
          "Peak Memory GB", "Context ms",      "Prompt Tokens", "Output Tokens", "quant",
          "kv_cache",       "flash_attn",      "threads",       "batch"};
}

absl::StatusOr<SweepStats> RunSweep(const std::vector<Job>& jobs, const std::vector<v1::Strategy>& strategies,
                                    Engine& engine, ModelFiles& models, const v1::HardwareDescriptor& host,
                                    const SweepOptions& options, std::ostream* progress) {
  if (options.repetitions < 1) return absl::InvalidArgumentError("repetitions: must be >= 1");
  if (options.out_csv.empty()) return absl::InvalidArgumentError("out: a CSV path is required");
  for (const Job& job : jobs) {
    if (job.prompt_tokens != job.output_tokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", job.line, ": output_tokens: must equal prompt_tokens in a sweep (", job.output_tokens,
                       " vs ", job.prompt_tokens, "): the LLM-Inference-Bench table has one Input Output Length"));
    }
  }
  std::vector<std::pair<const v1::Strategy*, EngineSettings>> runnable;
  for (const v1::Strategy& s : strategies) {
    auto settings = SettingsFromStrategy(s);
    if (!settings.ok())
      return absl::Status(settings.status().code(), absl::StrCat(s.id(), ": ", settings.status().message()));
    runnable.emplace_back(&s, *settings);
  }
  ACCELSEL_ASSIGN_OR_RETURN(const std::set<RowKey> present, ExistingRows(options.out_csv));
  ACCELSEL_RETURN_IF_ERROR(WriteMachineFiles(jobs, engine, models, host, options));

  std::error_code ec;
  const bool fresh = !fs::exists(options.out_csv, ec) || fs::file_size(options.out_csv, ec) == 0;
  std::ofstream out(options.out_csv, std::ios::app);
  if (!out) return absl::InternalError(absl::StrCat("cannot open ", options.out_csv, " for appending"));
  if (fresh) out << absl::StrJoin(SweepHeader(), ",") << "\n" << std::flush;

  SweepStats stats;
  const size_t total = static_cast<size_t>(options.repetitions) * jobs.size() * runnable.size();
  size_t done = 0;
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    for (const Job& job : jobs) {
      for (const auto& [strategy, settings] : runnable) {
        ++done;
        const RowKey key{job.id,         job.model,        absl::StrCat(job.prompt_tokens), absl::StrCat(job.parallel),
                         strategy->id(), absl::StrCat(rep)};
        if (present.count(key) > 0) {
          ++stats.rows_present;
          continue;
        }
        if (!models.Exists(job.model, settings.weights)) {
          if (rep == 1) ++stats.missing_files;
          continue;
        }
        const JobMetrics m = engine.Run(job, settings, models.Path(job.model, settings.weights));
        out << absl::StrJoin(Row(job, *strategy, rep, m, host), ",") << "\n" << std::flush;
        if (!out) return absl::InternalError(absl::StrCat("write to ", options.out_csv, " failed"));
        ++stats.rows_written;
        if (m.status != v1::RUN_STATUS_OK) ++stats.failed_runs;
        if (progress != nullptr) {
          *progress << "[" << done << "/" << total << "] rep " << rep << " " << job.id << " " << strategy->id() << ": "
                    << StatusName(m.status);
          if (m.status == v1::RUN_STATUS_OK) *progress << " e2e " << m.e2e_latency_ms << " ms";
          if (!m.message.empty()) *progress << " (" << m.message << ")";
          *progress << "\n";
        }
      }
    }
  }
  return stats;
}

}  // namespace accelsel::node
