// LLM-Inference-Bench import: CSV rows -> RunRecords, descriptor tables -> model/hardware descriptors.
// Kept free of gRPC and RocksDB so the offline evaluator and the CLI share it.
#include "datasets/llm_inference_bench.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "util/csv.h"
#include "util/file.h"
#include "util/hash.h"

namespace accelsel::datasets {

using model::HardwareDescriptor;
using model::kMissing;
using model::ModelDescriptor;
using model::RunMetrics;
using model::RunRecord;
using model::RunStatus;
using model::Strategy;
using model::TaskContext;
using model::WorkloadDescriptor;

namespace {

constexpr size_t kMaxSkipReasons = 10;

// A CSV file read whole by the one CSV reader (util/csv.h): header -> column index, then each record with its
// 1-based first line, as values or the reason it is malformed (an importer skips such a row and says why).
struct CsvTable {
  struct Row {
    int line = 0;
    absl::StatusOr<std::vector<std::string>> fields;
  };
  std::string path;
  std::unordered_map<std::string, size_t> columns;
  size_t width = 0;
  std::vector<Row> rows;

  absl::StatusOr<size_t> Column(const std::string& name) const {
    auto it = columns.find(name);
    if (it == columns.end()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": missing column \"", name, "\""));
    }
    return it->second;
  }
};

absl::StatusOr<CsvTable> ReadCsv(const std::string& path) {
  auto text = util::ReadFile(path);
  if (!text.ok()) return text.status();
  CsvTable table;
  table.path = path;
  util::CsvRecordReader reader(*text);
  CsvTable::Row row;
  bool have_header = false;
  while (reader.Next(&row.line, &row.fields)) {
    if (!have_header) {
      if (!row.fields.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": header: ", row.fields.status().message()));
      }
      for (size_t i = 0; i < row.fields->size(); ++i) table.columns[(*row.fields)[i]] = i;
      table.width = row.fields->size();
      have_header = true;
      continue;
    }
    table.rows.push_back(std::move(row));
  }
  if (!have_header) return absl::InvalidArgumentError(absl::StrCat(path, ": empty file"));
  return table;
}

// Error text of a malformed record without the reader's "line N: " (callers name the line themselves).
std::string RecordError(const absl::Status& status, int line) {
  absl::string_view message = status.message();
  absl::ConsumePrefix(&message, absl::StrCat("line ", line, ": "));
  return std::string(message);
}

absl::StatusOr<double> ParseDouble(const std::string& text, const std::string& what) {
  double v = 0;
  if (!util::ParseNumber(text, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " \"", text, "\" is not a finite number"));
  }
  return v;
}

absl::StatusOr<uint32_t> ParseCount(const std::string& text, const std::string& what) {
  uint32_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " \"", text, "\" is not a non-negative integer"));
  }
  return v;
}

// Column indices of one descriptor table, resolved once from its header.
template <size_t N>
absl::StatusOr<std::array<size_t, N>> ResolveColumns(const CsvTable& t, const std::array<const char*, N>& names) {
  std::array<size_t, N> idx{};
  for (size_t i = 0; i < N; ++i) {
    auto c = t.Column(names[i]);
    if (!c.ok()) return c.status();
    idx[i] = *c;
  }
  return idx;
}

absl::Status LoadModels(const std::string& path, DescriptorTables* out) {
  auto table = ReadCsv(path);
  if (!table.ok()) return table.status();
  enum { kName, kFamily, kParams, kLayers, kHidden, kHeads, kKvHeads, kExperts, kActive, kDtype, kSource, kN };
  auto cols = ResolveColumns<kN>(*table, {"name", "family", "parameters_b", "layers", "hidden_size", "attention_heads",
                                          "kv_heads", "experts", "active_experts", "weight_dtype", "source"});
  if (!cols.ok()) return cols.status();
  for (const auto& [line_no, f] : table->rows) {
    auto where = [&, ln = line_no] { return absl::StrCat(path, ":", ln, ": "); };
    if (!f.ok()) return absl::InvalidArgumentError(where() + RecordError(f.status(), line_no));
    if (f->size() != table->width) {
      return absl::InvalidArgumentError(absl::StrCat(where(), f->size(), " fields, header has ", table->width));
    }
    const auto& c = *cols;
    ModelDescriptor m;
    m.name = (*f)[c[kName]];
    m.family = (*f)[c[kFamily]];
    m.weight_dtype = (*f)[c[kDtype]];
    if (m.name.empty()) return absl::InvalidArgumentError(where() + "empty name");
    if ((*f)[c[kSource]].empty()) return absl::InvalidArgumentError(where() + "empty source");
    auto params = ParseDouble((*f)[c[kParams]], "parameters_b");
    if (!params.ok()) return absl::InvalidArgumentError(where() + std::string(params.status().message()));
    m.parameters_b = *params;
    struct {
      int col;
      uint32_t* dst;
      const char* what;
    } counts[] = {{kLayers, &m.layers, "layers"},
                  {kHidden, &m.hidden_size, "hidden_size"},
                  {kHeads, &m.attention_heads, "attention_heads"},
                  {kKvHeads, &m.kv_heads, "kv_heads"},
                  {kExperts, &m.experts, "experts"},
                  {kActive, &m.active_experts, "active_experts"}};
    for (const auto& k : counts) {
      auto v = ParseCount((*f)[c[k.col]], k.what);
      if (!v.ok()) return absl::InvalidArgumentError(where() + std::string(v.status().message()));
      *k.dst = *v;
    }
    if (!out->models.emplace(m.name, m).second) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "model \"", m.name, "\" listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadAccelerators(const std::string& path, DescriptorTables* out) {
  auto table = ReadCsv(path);
  if (!table.ok()) return table.status();
  enum { kName, kCanonical, kMemory, kBandwidth, kTflops, kInterconnect, kSource, kN };
  auto cols = ResolveColumns<kN>(*table, {"name", "canonical_name", "memory_gb", "memory_bandwidth_gbps", "peak_tflops",
                                          "interconnect", "source"});
  if (!cols.ok()) return cols.status();
  std::vector<AcceleratorEntry> entries;
  for (const auto& [line_no, f] : table->rows) {
    auto where = [&, ln = line_no] { return absl::StrCat(path, ":", ln, ": "); };
    if (!f.ok()) return absl::InvalidArgumentError(where() + RecordError(f.status(), line_no));
    if (f->size() != table->width) {
      return absl::InvalidArgumentError(absl::StrCat(where(), f->size(), " fields, header has ", table->width));
    }
    const auto& c = *cols;
    AcceleratorEntry e;
    e.label = (*f)[c[kName]];
    e.descriptor.accelerator = (*f)[c[kCanonical]];
    e.descriptor.interconnect = (*f)[c[kInterconnect]];
    e.source = (*f)[c[kSource]];
    if (e.label.empty() || e.descriptor.accelerator.empty()) {
      return absl::InvalidArgumentError(where() + "empty name or canonical_name");
    }
    if (e.source.empty()) return absl::InvalidArgumentError(where() + "empty source");
    struct {
      int col;
      double* dst;
      const char* what;
    } nums[] = {{kMemory, &e.descriptor.memory_gb, "memory_gb"},
                {kBandwidth, &e.descriptor.memory_bandwidth_gbps, "memory_bandwidth_gbps"},
                {kTflops, &e.descriptor.peak_tflops, "peak_tflops"}};
    for (const auto& n : nums) {
      auto v = ParseDouble((*f)[c[n.col]], n.what);
      if (!v.ok()) return absl::InvalidArgumentError(where() + std::string(v.status().message()));
      if (*v < 0) return absl::InvalidArgumentError(absl::StrCat(where(), n.what, " is negative"));
      *n.dst = *v;
    }
    entries.push_back(std::move(e));
  }
  // Labels first, then canonical names that are not also a label, so a lookup by either works.
  for (const auto& e : entries) {
    if (!out->accelerators.emplace(e.label, e).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": accelerator \"", e.label, "\" listed twice"));
    }
  }
  for (const auto& e : entries) out->accelerators.emplace(e.descriptor.accelerator, e);
  return absl::OkStatus();
}

bool IsStrategyIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '/' ||
         c == '+' || c == '=' || c == '-';
}

struct BenchColumns {
  size_t hardware, count, framework, model, length, batch, latency, throughput;
};

absl::StatusOr<BenchColumns> ResolveBenchColumns(const CsvTable& t) {
  auto cols = ResolveColumns<8>(t, {"Hardware", "Num of Hardware", "Framework", "Model", "Input Output Length",
                                    "Batch Size", "Latency", "Throughput"});
  if (!cols.ok()) return cols.status();
  const auto& c = *cols;
  return BenchColumns{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]};
}

// One parsed row before descriptors are attached.
struct BenchRow {
  std::string hardware_label, framework_label, model_name;
  uint32_t count = 0, length = 0, batch = 0;
  double latency_s = 0, throughput = 0;
};

absl::StatusOr<BenchRow> ParseBenchRow(const std::vector<std::string>& f, const BenchColumns& c) {
  BenchRow r;
  r.hardware_label = f[c.hardware];
  r.framework_label = f[c.framework];
  r.model_name = f[c.model];
  if (r.hardware_label.empty() || r.framework_label.empty() || r.model_name.empty()) {
    return absl::InvalidArgumentError("empty Hardware, Framework or Model");
  }
  auto count = ParseCount(f[c.count], "Num of Hardware");
  if (!count.ok()) return count.status();
  auto length = ParseCount(f[c.length], "Input Output Length");
  if (!length.ok()) return length.status();
  auto batch = ParseCount(f[c.batch], "Batch Size");
  if (!batch.ok()) return batch.status();
  if (*count == 0 || *length == 0 || *batch == 0) {
    return absl::InvalidArgumentError("Num of Hardware, Input Output Length and Batch Size must be >= 1");
  }
  auto latency = ParseDouble(f[c.latency], "Latency");
  if (!latency.ok()) return latency.status();
  auto throughput = ParseDouble(f[c.throughput], "Throughput");
  if (!throughput.ok()) return throughput.status();
  if (*latency <= 0 || *throughput < 0) {
    return absl::InvalidArgumentError("Latency must be > 0 and Throughput >= 0");
  }
  r.count = *count;
  r.length = *length;
  r.batch = *batch;
  r.latency_s = *latency;
  r.throughput = *throughput;
  return r;
}

}  // namespace

const AcceleratorEntry* DescriptorTables::FindAccelerator(const std::string& name) const {
  auto it = accelerators.find(name);
  return it == accelerators.end() ? nullptr : &it->second;
}

const ModelDescriptor* DescriptorTables::FindModel(const std::string& name) const {
  auto it = models.find(name);
  return it == models.end() ? nullptr : &it->second;
}

namespace {

// The entry of `table` whose key equals `name` ignoring ASCII case; nullptr when none does, or when two such
// entries hold different values (`same` compares them).
template <typename Value, typename Same>
const Value* MatchIgnoringCase(const std::map<std::string, Value>& table, const std::string& name, Same same) {
  const Value* found = nullptr;
  for (const auto& [key, value] : table) {
    if (!absl::EqualsIgnoreCase(key, name)) continue;
    if (found != nullptr && !same(*found, value)) return nullptr;
    found = &value;
  }
  return found;
}

bool SameModel(const ModelDescriptor& a, const ModelDescriptor& b) {
  return a.family == b.family && a.parameters_b == b.parameters_b && a.layers == b.layers &&
         a.hidden_size == b.hidden_size && a.attention_heads == b.attention_heads && a.kv_heads == b.kv_heads &&
         a.experts == b.experts && a.active_experts == b.active_experts && a.weight_dtype == b.weight_dtype;
}

bool SameAccelerator(const AcceleratorEntry& a, const AcceleratorEntry& b) {
  const HardwareDescriptor &x = a.descriptor, &y = b.descriptor;
  return x.accelerator == y.accelerator && x.memory_gb == y.memory_gb &&
         x.memory_bandwidth_gbps == y.memory_bandwidth_gbps && x.peak_tflops == y.peak_tflops &&
         x.interconnect == y.interconnect;
}

}  // namespace

const AcceleratorEntry* DescriptorTables::MatchAccelerator(const std::string& name) const {
  if (const AcceleratorEntry* exact = FindAccelerator(name)) return exact;
  return MatchIgnoringCase(accelerators, name, SameAccelerator);
}

const ModelDescriptor* DescriptorTables::MatchModel(const std::string& name) const {
  if (const ModelDescriptor* exact = FindModel(name)) return exact;
  return MatchIgnoringCase(models, name, SameModel);
}

absl::StatusOr<DescriptorTables> LoadDescriptorTables(const std::string& dir) {
  DescriptorTables tables;
  if (auto s = LoadModels(dir + "/models.csv", &tables); !s.ok()) return s;
  if (auto s = LoadAccelerators(dir + "/accelerators.csv", &tables); !s.ok()) return s;
  return tables;
}

std::string NormalizeFramework(const std::string& label) {
  std::string id = absl::AsciiStrToLower(absl::StripAsciiWhitespace(label));
  for (char& c : id) {
    if (!IsStrategyIdChar(c)) c = '-';
  }
  if (id.empty()) id = "unknown";
  if (id.size() > 128) id.resize(128);
  return id;
}

Strategy LlmBenchStrategy(const std::string& strategy_id) {
  static const std::map<std::string, std::string> kDescriptions = {
      {"vllm", "vLLM: PagedAttention KV cache with continuous batching"},
      {"tensorrt-llm", "NVIDIA TensorRT-LLM: compiled engines with in-flight batching"},
      {"llama.cpp", "llama.cpp: C/C++ inference engine (GGML kernels)"},
      {"deepspeed-mii", "DeepSpeed-MII: DeepSpeed-FastGen inference with blocked KV cache"},
      {"deepspeed", "DeepSpeed inference (as run on Habana Gaudi2 in LLM-Inference-Bench)"},
      {"sambaflow", "SambaFlow: SambaNova's dataflow compiler and runtime for the SN40L"},
  };
  Strategy s;
  s.id = strategy_id;
  s.components = {{"engine", strategy_id}};
  auto it = kDescriptions.find(strategy_id);
  s.description = it != kDescriptions.end()
                      ? it->second
                      : absl::StrCat("inference engine \"", strategy_id, "\" (from LLM-Inference-Bench)");
  return s;
}

std::vector<Strategy> LlmBenchStrategies(const std::vector<RunRecord>& runs) {
  std::set<std::string> ids;
  for (const auto& r : runs) ids.insert(r.strategy_id);
  std::vector<Strategy> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(LlmBenchStrategy(id));
  return out;
}

absl::StatusOr<std::vector<RunRecord>> LoadLlmInferenceBench(const std::string& csv_path,
                                                             const std::string& descriptors_dir,
                                                             LlmBenchImportStats* stats) {
  LlmBenchImportStats local;
  LlmBenchImportStats& st = stats != nullptr ? *stats : local;
  st = LlmBenchImportStats{};

  DescriptorTables tables;
  if (!descriptors_dir.empty()) {
    auto loaded = LoadDescriptorTables(descriptors_dir);
    if (!loaded.ok()) return loaded.status();
    tables = *std::move(loaded);
  }
  auto table = ReadCsv(csv_path);
  if (!table.ok()) return table.status();
  auto cols = ResolveBenchColumns(*table);
  if (!cols.ok()) return cols.status();

  std::vector<RunRecord> runs;
  runs.reserve(table->rows.size());
  std::unordered_set<std::string> seen_content;         // the row's fields as written, joined
  std::unordered_set<std::string> seen_task;            // task + strategy, hardware label as written
  std::unordered_set<std::string> seen_task_canonical;  // task + strategy, canonical accelerator name
  for (const auto& [line_no, fields] : table->rows) {
    ++st.rows_read;
    auto skip = [&, ln = line_no](absl::string_view why) {
      ++st.rows_skipped;
      if (st.skip_reasons.size() < kMaxSkipReasons) st.skip_reasons.push_back(absl::StrCat("line ", ln, ": ", why));
    };
    if (!fields.ok()) {
      skip(RecordError(fields.status(), line_no));
      continue;
    }
    if (fields->size() != table->width) {
      skip(absl::StrCat(fields->size(), " fields, header has ", table->width));
      continue;
    }
    auto row = ParseBenchRow(*fields, *cols);
    if (!row.ok()) {
      skip(row.status().message());
      continue;
    }
    const std::string content = absl::StrJoin(*fields, "\x1f");
    if (!seen_content.insert(content).second) {
      ++st.identical_rows_folded;
      continue;
    }

    RunRecord r;
    // The stable hash (util/hash.h): the same run ids on every machine and every import, so re-imports are duplicates.
    r.run_id = absl::StrCat("llmib-", absl::Hex(util::Fnv1a64(content), absl::kZeroPad16));
    r.node_id = kLlmBenchNodeId;
    r.time_unix_ms = 0;
    r.strategy_id = NormalizeFramework(row->framework_label);
    r.status = RunStatus::kOk;
    r.metrics.e2e_latency_ms = row->latency_s * 1000.0;
    r.metrics.throughput_tokens_per_s = row->throughput;

    TaskContext& ctx = r.context;
    if (const ModelDescriptor* m = tables.FindModel(row->model_name)) {
      ctx.model = *m;
    } else {
      ctx.model.name = row->model_name;
      ++st.rows_unknown_model;
      st.unknown_models.insert(row->model_name);
    }
    if (const AcceleratorEntry* a = tables.FindAccelerator(row->hardware_label)) {
      ctx.hardware = a->descriptor;
      if (a->descriptor.accelerator != row->hardware_label) {
        ++st.label_variant_rows;
        st.label_mapping[row->hardware_label] = a->descriptor.accelerator;
      }
    } else {
      ctx.hardware.accelerator = row->hardware_label;
      ++st.rows_unknown_accelerator;
      st.unknown_accelerators.insert(row->hardware_label);
    }
    ctx.hardware.count = row->count;
    ctx.workload.prompt_tokens = row->length;
    ctx.workload.output_tokens = row->length;
    ctx.workload.batch_size = row->batch;

    const std::string task_rest = absl::StrCat("\x1f", row->count, "\x1f", r.strategy_id, "\x1f", ctx.model.name,
                                               "\x1f", row->length, "\x1f", row->batch);
    if (!seen_task.insert(row->hardware_label + task_rest).second) ++st.repeated_task_rows;
    if (!seen_task_canonical.insert(ctx.hardware.accelerator + task_rest).second) ++st.repeated_task_rows_canonical;
    runs.push_back(std::move(r));
  }
  st.runs = runs.size();
  return runs;
}

}  // namespace accelsel::datasets
