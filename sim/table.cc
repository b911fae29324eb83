// Building the simulator's table from LLM-Inference-Bench or a generic CSV; see table.h.
#include "sim/table.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "datasets/llm_inference_bench.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "model/features.h"
#include "proto/convert.h"
#include "util/csv.h"

namespace accelsel::sim {
namespace {

constexpr char kUnspecified[] = "unspecified";

// Map fields serialise in hash order unless asked otherwise; the key must not depend on it.
std::string ContextKey(const v1::TaskContext& context) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    context.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string TaskName(const v1::TaskContext& c) {
  std::string name = absl::StrCat(c.hardware().accelerator(), " x", c.hardware().count(), " / ", c.model().name());
  if (c.workload().prompt_tokens() > 0) {
    absl::StrAppend(&name, " / io ", c.workload().prompt_tokens(), " / batch ", c.workload().batch_size());
  }
  std::map<std::string, double> extra(c.extra().begin(), c.extra().end());
  for (const auto& [k, v] : extra) absl::StrAppend(&name, " / ", k, "=", v);
  return name;
}

// Id alphabet of the API: [A-Za-z0-9._:/+=-]. Lower-cased so that ids read like the product's engine ids.
std::string ToId(absl::string_view text) {
  std::string id = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  for (char& ch : id) {
    const bool ok = absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == ':' ||
                    ch == '/' || ch == '+' || ch == '=' || ch == '-';
    if (!ok) ch = '-';
  }
  return id.empty() ? "-" : id;
}

}  // namespace

uint32_t SimTable::MostCommonStrategy() const {
  std::vector<size_t> count(strategies.size(), 0);
  for (const SimTask& t : tasks) {
    for (uint32_t s : t.present) ++count[s];
  }
  uint32_t best = 0;
  for (uint32_t s = 1; s < count.size(); ++s) {
    if (count[s] > count[best]) best = s;  // strategies are sorted by id: ties keep the smaller id
  }
  return best;
}

int SimTable::StrategyIndex(const std::string& id) const {
  for (size_t i = 0; i < strategies.size(); ++i) {
    if (strategies[i].id == id) return static_cast<int>(i);
  }
  return -1;
}

int SimTable::HardwareIndex(const std::string& name) const {
  for (size_t i = 0; i < hardware.size(); ++i) {
    if (hardware[i] == name) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<SimTable> TableFromRecords(const std::vector<model::RunRecord>& records,
                                          const std::vector<model::Strategy>& catalog, bool maximize) {
  SimTable table;
  table.maximize = maximize;
  table.objective = maximize ? v1::OBJECTIVE_THROUGHPUT : v1::OBJECTIVE_E2E_LATENCY;
  std::set<std::string> strategy_ids;
  for (const model::RunRecord& r : records) strategy_ids.insert(r.strategy_id);
  std::map<std::string, uint32_t> strategy_of;
  for (const std::string& id : strategy_ids) {
    strategy_of[id] = static_cast<uint32_t>(table.strategies.size());
    model::Strategy strategy{id, model::ComponentsFromId(id), ""};
    for (const model::Strategy& c : catalog) {
      if (c.id == id) strategy = c;
    }
    table.strategies.push_back(std::move(strategy));
  }
  // Per task: sum of log values and count per strategy (geometric mean of repeated measurements).
  struct Cells {
    v1::TaskContext context;
    std::map<uint32_t, std::pair<double, int>> log_sum;
  };
  std::vector<Cells> cells;
  absl::flat_hash_map<std::string, size_t> task_of;
  for (const model::RunRecord& r : records) {
    const double v = maximize ? r.metrics.throughput_tokens_per_s : r.metrics.e2e_latency_ms;
    if (model::IsFailure(r.status) || model::IsMissing(v) || !(v > 0) || !std::isfinite(v)) {
      ++table.rows_skipped;
      continue;
    }
    v1::TaskContext context;
    ToProto(r.context, &context);
    auto [it, inserted] = task_of.try_emplace(ContextKey(context), cells.size());
    if (inserted) cells.push_back({std::move(context), {}});
    auto& cell = cells[it->second].log_sum[strategy_of[r.strategy_id]];
    cell.first += std::log(v);
    cell.second += 1;
    ++table.rows_used;
  }
  std::set<std::string> hardware;  // of the tasks kept: a hardware without jobs would get nodes with nothing to run
  for (const Cells& c : cells) {
    if (c.log_sum.size() >= 2) hardware.insert(c.context.hardware().accelerator());
  }
  table.hardware.assign(hardware.begin(), hardware.end());
  for (Cells& c : cells) {
    if (c.log_sum.size() < 2) {
      ++table.tasks_skipped;
      continue;
    }
    SimTask task;
    task.name = TaskName(c.context);
    task.hardware = static_cast<uint32_t>(table.HardwareIndex(c.context.hardware().accelerator()));
    task.context = std::move(c.context);
    task.value.assign(table.strategies.size(), model::kMissing);
    for (const auto& [s, sum] : c.log_sum) {
      task.value[s] = std::exp(sum.first / sum.second);
      task.present.push_back(s);
    }
    table.tasks.push_back(std::move(task));
  }
  if (table.tasks.empty()) return absl::InvalidArgumentError("the table has no task with at least two strategies");
  return table;
}

absl::StatusOr<SimTable> LoadLlmBenchTable(const std::string& csv_path, const std::string& descriptors_dir) {
  auto records = datasets::LoadLlmInferenceBench(csv_path, descriptors_dir, nullptr);
  if (!records.ok()) return records.status();
  return TableFromRecords(*records, datasets::LlmBenchStrategies(*records), /*maximize=*/false);
}

absl::StatusOr<SimTable> LoadCsvTable(const CsvTableSpec& spec) {
  auto csv = util::ReadCsvFile(spec.path);
  if (!csv.ok()) return csv.status();
  auto column = [&](const std::string& name, const char* what) -> absl::StatusOr<int> {
    const int c = csv->Column(name);
    if (c < 0) return absl::InvalidArgumentError(absl::StrCat(what, " column '", name, "' not in ", spec.path));
    return c;
  };
  std::vector<int> task_cols, strategy_cols;
  for (const std::string& name : spec.task_cols) {
    auto c = column(name, "task");
    if (!c.ok()) return c.status();
    task_cols.push_back(*c);
  }
  for (const std::string& name : spec.strategy_cols) {
    auto c = column(name, "strategy");
    if (!c.ok()) return c.status();
    strategy_cols.push_back(*c);
  }
  auto target = column(spec.target_col, "target");
  if (!target.ok()) return target.status();
  int hardware_col = -1, model_col = -1;
  if (!spec.hardware_col.empty()) {
    auto c = column(spec.hardware_col, "hardware");
    if (!c.ok()) return c.status();
    hardware_col = *c;
  }
  if (!spec.model_col.empty()) {
    auto c = column(spec.model_col, "model");
    if (!c.ok()) return c.status();
    model_col = *c;
  }
  // Task columns other than hardware and model become context.extra: numeric when every value parses.
  std::vector<int> extra_cols;
  for (int c : task_cols) {
    if (c != hardware_col && c != model_col) extra_cols.push_back(c);
  }
  if (extra_cols.size() > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most 32 task columns besides --hardware-col and --model-col "
                     "fit in context.extra (got ",
                     extra_cols.size(), ")"));
  }
  std::vector<bool> numeric(extra_cols.size(), true);
  for (const auto& row : csv->rows) {
    for (size_t j = 0; j < extra_cols.size(); ++j) {
      double v = 0;
      if (!util::ParseNumber(row[extra_cols[j]], &v) || !std::isfinite(v)) numeric[j] = false;
    }
  }
  std::vector<model::RunRecord> records;
  std::map<std::string, model::Strategy> strategies;
  std::map<std::string, std::string> raw_of_id;  // strategy id -> the raw values it came from
  for (const auto& row : csv->rows) {
    model::RunRecord r;
    double v = 0;
    if (!util::ParseNumber(row[*target], &v)) v = model::kMissing;
    (spec.maximize ? r.metrics.throughput_tokens_per_s : r.metrics.e2e_latency_ms) = v;
    auto& ctx = r.context;
    ctx.hardware.accelerator =
        hardware_col >= 0 ? std::string(absl::StripAsciiWhitespace(row[hardware_col])) : kUnspecified;
    ctx.model.name = model_col >= 0 ? std::string(absl::StripAsciiWhitespace(row[model_col])) : kUnspecified;
    if (ctx.hardware.accelerator.empty()) ctx.hardware.accelerator = kUnspecified;
    if (ctx.model.name.empty()) ctx.model.name = kUnspecified;
    ctx.hardware.count = 1;  // the API requires >= 1
    ctx.workload.batch_size = 1;
    for (size_t j = 0; j < extra_cols.size(); ++j) {
      const std::string& cell = row[extra_cols[j]];
      const std::string key = ToId(csv->header[extra_cols[j]]);
      double x = 0;
      if (numeric[j]) {
        util::ParseNumber(cell, &x);
      } else {
        const absl::string_view text = absl::StripAsciiWhitespace(cell);
        x = static_cast<double>(util::StableHash(std::string_view(text.data(), text.size())) >> 11) * 0x1.0p-53;
      }
      ctx.extra[key] = x;
    }
    std::vector<std::string> parts, raw;
    model::Strategy strategy;
    for (int c : strategy_cols) {
      const std::string value(absl::StripAsciiWhitespace(row[c]));
      raw.push_back(value);
      parts.push_back(ToId(value));
      strategy.components.emplace_back(ToId(csv->header[c]), value.empty() ? "-" : value);
    }
    strategy.id = absl::StrJoin(parts, "/");
    const std::string raw_key = absl::StrJoin(raw, "\x1f");
    auto [seen, fresh] = raw_of_id.try_emplace(strategy.id, raw_key);
    if (!fresh && seen->second != raw_key) {
      return absl::InvalidArgumentError(absl::StrCat("strategies '", absl::StrJoin(raw, "/"), "' and another one ",
                                                     "both map to the id '", strategy.id, "'"));
    }
    r.strategy_id = strategy.id;
    strategies.try_emplace(strategy.id, std::move(strategy));
    records.push_back(std::move(r));
  }
  std::vector<model::Strategy> catalog;
  for (auto& [id, s] : strategies) catalog.push_back(std::move(s));
  return TableFromRecords(records, catalog, spec.maximize);
}

}  // namespace accelsel::sim
