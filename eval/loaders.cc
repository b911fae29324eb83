// Problem builders for --csv, --aslib and record-based (--llm-inference-bench) evaluation; see loaders.h.
#include "eval/loaders.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "eval/arff.h"
#include "eval/tabular_encoder.h"
#include "model/features.h"
#include "model/observed_stats.h"
#include "model/selector.h"
#include "util/file.h"

namespace accelsel::eval {

using model::ComponentsFromId;
using model::ContextFeatureWidth;
using model::EncodeContext;
using model::EncodeStrategy;
using model::EvidenceLayer;
using model::IsMissing;
using model::MetaModel;
using model::Objective;
using model::ObservedStats;
using model::Recommendation;
using model::RunRecord;
using model::Selector;
using model::SelectorOptions;
using model::SelectQuery;
using model::Strategy;
using model::StrategyFeatureWidth;
using model::TrainOptions;
using util::CsvTable;
using util::ParseNumber;
using util::ReadFile;
using util::StableHash;

namespace {

absl::StatusOr<std::vector<int>> ColumnIndices(const CsvTable& t, const std::vector<std::string>& names,
                                               const char* what) {
  std::vector<int> idx;
  for (const std::string& n : names) {
    const int c = t.Column(n);
    if (c < 0) return absl::InvalidArgumentError(absl::StrCat(what, " column '", n, "' not in the CSV header"));
    idx.push_back(c);
  }
  if (idx.empty()) return absl::InvalidArgumentError(absl::StrCat("no ", what, " columns given"));
  return idx;
}

std::string Unquote(absl::string_view s) {
  s = absl::StripAsciiWhitespace(s);
  if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front()) {
    s = s.substr(1, s.size() - 2);
  }
  return std::string(s);
}

// Average of repeated measurements of one (task, strategy).
struct Cell {
  double sum = 0;
  double n = 0;
  bool all_ok = true;
};

}  // namespace

// --- CSV ---------------------------------------------------------------------------------------------------

absl::StatusOr<LoadedProblem> LoadCsvProblem(const CsvTable& table, const CsvSpec& spec) {
  auto task_idx = ColumnIndices(table, spec.task_cols, "task");
  if (!task_idx.ok()) return task_idx.status();
  auto strat_idx = ColumnIndices(table, spec.strategy_cols, "strategy");
  if (!strat_idx.ok()) return strat_idx.status();
  const int target = table.Column(spec.target_col);
  if (target < 0) return absl::InvalidArgumentError(absl::StrCat("target column '", spec.target_col, "' not found"));
  const int group = spec.group_col.empty() ? -1 : table.Column(spec.group_col);
  if (!spec.group_col.empty() && group < 0) {
    return absl::InvalidArgumentError(absl::StrCat("group column '", spec.group_col, "' not found"));
  }
  LoadedProblem out;
  Problem& p = out.problem;
  p.maximize = spec.maximize;
  std::map<std::string, uint32_t> task_of, strat_of;
  std::vector<size_t> task_first_row, strat_first_row;
  std::vector<std::map<uint32_t, Cell>> cells;
  std::vector<std::string> task_group;
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    double v = 0;
    if (!ParseNumber(row[target], &v) || !(v > 0) || !std::isfinite(v)) {
      ++p.skipped_rows;
      continue;
    }
    std::vector<absl::string_view> tk, sk;
    for (int c : *task_idx) tk.push_back(absl::StripAsciiWhitespace(row[c]));
    for (int c : *strat_idx) sk.push_back(absl::StripAsciiWhitespace(row[c]));
    const std::string tkey = absl::StrJoin(tk, "\x1f");
    const std::string skey = absl::StrJoin(sk, "\x1f");
    auto [ti, tnew] = task_of.try_emplace(tkey, static_cast<uint32_t>(task_of.size()));
    if (tnew) {
      task_first_row.push_back(r);
      cells.emplace_back();
      task_group.push_back(group >= 0 ? std::string(absl::StripAsciiWhitespace(row[group])) : "");
    }
    auto [si, snew] = strat_of.try_emplace(skey, static_cast<uint32_t>(strat_of.size()));
    if (snew) {
      strat_first_row.push_back(r);
      p.strategy_names.push_back(absl::StrJoin(sk, "/"));
    }
    Cell& cell = cells[ti->second][si->second];
    cell.sum += v;
    cell.n += 1;
  }
  // Column-typed encoders over the distinct tasks and strategies (feature values only, no targets).
  auto encode = [&](const std::vector<int>& cols, const std::vector<size_t>& first_rows, TabularEncoder* enc,
                    std::vector<float>* x) {
    std::vector<std::string> names;
    std::vector<std::vector<std::string>> columns(cols.size());
    for (size_t j = 0; j < cols.size(); ++j) {
      names.push_back(table.header[cols[j]]);
      for (size_t r : first_rows) columns[j].push_back(table.rows[r][cols[j]]);
    }
    enc->Fit(names, columns);
    for (size_t i = 0; i < first_rows.size(); ++i) enc->Encode(columns, i, x);
  };
  TabularEncoder task_enc, strat_enc;
  std::vector<float> all_task_x;
  encode(*task_idx, task_first_row, &task_enc, &all_task_x);
  encode(*strat_idx, strat_first_row, &strat_enc, &out.features.strat_x);
  out.features.task_dim = task_enc.width();
  out.features.strat_dim = strat_enc.width();
  for (size_t t = 0; t < cells.size(); ++t) {
    if (cells[t].size() < 2) {
      ++p.skipped_tasks;
      continue;
    }
    Problem::Task task;
    task.group = task_group[t];
    for (const auto& [s, c] : cells[t]) task.entries.push_back({s, c.sum / c.n, true});
    const auto& row = table.rows[task_first_row[t]];
    std::vector<std::string> parts;
    for (int c : *task_idx) parts.push_back(row[c]);
    task.name = absl::StrJoin(parts, "/");
    p.tasks.push_back(std::move(task));
    const float* x = all_task_x.data() + t * out.features.task_dim;
    out.features.task_x.insert(out.features.task_x.end(), x, x + out.features.task_dim);
  }
  return out;
}

// --- ASlib -------------------------------------------------------------------------------------------------

namespace {

// Items of an inline YAML list "[a, 'b']" (unquoted), or the single scalar when `rest` is not a list.
std::vector<std::string> InlineList(const std::string& rest) {
  std::vector<std::string> out;
  if (!absl::StartsWith(rest, "[")) {
    if (!rest.empty()) out.push_back(rest);
    return out;
  }
  for (absl::string_view s : absl::StrSplit(absl::StripSuffix(absl::StripPrefix(rest, "["), "]"), ',')) {
    if (!Unquote(s).empty()) out.push_back(Unquote(s));
  }
  return out;
}

}  // namespace

AslibDescription ParseAslibDescription(absl::string_view text) {
  AslibDescription d;
  // Top-level keys whose value is a list of scalars, in any YAML form: "key: [a, b]", "key: a", or "- a" items
  // below the key (at column 0 or indented).
  std::map<std::string, std::vector<std::string>> lists;
  std::string top;   // current top-level key
  std::string step;  // current feature step under feature_steps
  std::string sub;   // current key under a step (provides / requires)
  int step_indent = -1;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    const size_t first = raw.find_first_not_of(' ');
    if (first == absl::string_view::npos) continue;
    const int indent = static_cast<int>(first);
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    // Not only spaces: a line of tabs or other ASCII whitespace is empty after stripping (found by fuzz_csv).
    if (line.empty() || line[0] == '#') continue;
    const bool item = absl::StartsWith(line, "- ") || line == "-";
    std::string value = item ? Unquote(line.substr(1)) : "";
    if (indent == 0 && !item) {
      const size_t colon = line.find(':');
      top = std::string(absl::StripAsciiWhitespace(line.substr(0, colon)));
      step.clear();
      sub.clear();
      step_indent = -1;
      const std::string rest = colon == absl::string_view::npos ? "" : Unquote(line.substr(colon + 1));
      if (top != "feature_steps") lists[top] = InlineList(rest);
      continue;
    }
    if (item) {
      if (top == "feature_steps") {
        if (!step.empty() && sub == "provides") d.provides[step].push_back(value);
      } else {
        lists[top].push_back(value);
      }
      continue;
    }
    if (top == "feature_steps") {
      const size_t colon = line.find(':');
      const std::string key = Unquote(line.substr(0, colon));
      if (step_indent < 0 || indent <= step_indent) {
        step_indent = indent;
        step = key;
        sub.clear();
        d.provides.try_emplace(step);
      } else {
        sub = key;
        // Inline list: "provides: [a, b]".
        const std::string rest = colon == absl::string_view::npos ? "" : Unquote(line.substr(colon + 1));
        if (sub == "provides" && absl::StartsWith(rest, "[")) {
          for (std::string& f : InlineList(rest)) d.provides[step].push_back(std::move(f));
        }
      }
    }
  }
  auto list = [&lists](const char* key) -> const std::vector<std::string>& {
    static const std::vector<std::string> kEmpty;
    auto it = lists.find(key);
    return it == lists.end() ? kEmpty : it->second;
  };
  if (const auto& v = list("algorithm_cutoff_time"); !v.empty()) {
    double cutoff = 0;
    if (absl::SimpleAtod(v.front(), &cutoff)) d.cutoff = cutoff;
  }
  d.default_steps = list("default_steps");
  d.performance_measures = list("performance_measures");
  d.performance_types = list("performance_type");
  for (const std::string& m : list("maximize")) d.maximize_each.push_back(absl::EqualsIgnoreCase(m, "true"));
  // The first listed measure is the one scored.
  if (!d.performance_types.empty()) d.performance_type = d.performance_types.front();
  if (!d.maximize_each.empty()) d.maximize = d.maximize_each.front();
  return d;
}

absl::StatusOr<LoadedProblem> LoadAslibProblem(const std::string& dir) {
  auto desc_text = ReadFile(dir + "/description.txt");
  if (!desc_text.ok()) return desc_text.status();
  const AslibDescription desc = ParseAslibDescription(*desc_text);
  const bool runtime = absl::EqualsIgnoreCase(desc.performance_type, "runtime");
  if (runtime && !(desc.cutoff > 0)) return absl::InvalidArgumentError("description.txt: no algorithm_cutoff_time");
  auto runs = ReadArffFile(dir + "/algorithm_runs.arff");
  if (!runs.ok()) return runs.status();
  auto feats = ReadArffFile(dir + "/feature_values.arff");
  if (!feats.ok()) return feats.status();
  auto cv = ReadArffFile(dir + "/cv.arff");
  if (!cv.ok()) return cv.status();

  LoadedProblem out;
  Problem& p = out.problem;
  p.aslib = runtime;
  p.quality = !runtime;
  p.cutoff = desc.cutoff;
  p.maximize = !runtime && desc.maximize;

  // Algorithm runs: instance -> algorithm -> the scored measure averaged over repetitions (PAR10 for runtime).
  const int ri = runs->Column("instance_id"), ra = runs->Column("algorithm"), rs = runs->Column("runstatus");
  int rv = desc.performance_measures.empty() ? -1 : runs->Column(desc.performance_measures.front());
  if (runtime && rv < 0) rv = runs->Column("runtime");
  if (runtime && rv < 0) rv = runs->Column(desc.performance_type);
  if (ri < 0 || ra < 0 || rv < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm_runs.arff: needs instance_id, algorithm and the performance column '",
        desc.performance_measures.empty() ? desc.performance_type : desc.performance_measures.front(), "'"));
  }
  p.measure = runs->attributes[rv].name;
  std::map<std::string, uint32_t> algo_of;
  std::map<std::string, std::map<uint32_t, Cell>> perf;
  for (const auto& row : runs->rows) {
    if (!row[ri] || !row[ra]) continue;
    const uint32_t a = algo_of.try_emplace(*row[ra], algo_of.size()).first->second;
    double v = 0;
    const bool parsed = row[rv] && ParseNumber(*row[rv], &v);
    bool ok = parsed && (rs < 0 || (row[rs] && absl::EqualsIgnoreCase(*row[rs], "ok")));
    if (runtime) {
      if (ok && v > desc.cutoff) ok = false;
      if (!ok) v = p.par_factor * desc.cutoff;
    } else if (!parsed || !std::isfinite(v)) {
      continue;  // solution quality: the recorded value is the score whatever the runstatus; none = no entry
    }
    Cell& c = perf[*row[ri]][a];
    c.sum += v;
    c.n += 1;
    c.all_ok = c.all_ok && ok;
  }
  p.strategy_names.resize(algo_of.size());
  for (const auto& [name, a] : algo_of) p.strategy_names[a] = name;

  // Feature columns: those provided by the default steps (all numeric ones if the description lists none).
  std::set<std::string> allowed;
  for (const std::string& s : desc.default_steps) {
    auto it = desc.provides.find(s);
    if (it != desc.provides.end()) allowed.insert(it->second.begin(), it->second.end());
  }
  const int fi = feats->Column("instance_id");
  if (fi < 0) return absl::InvalidArgumentError("feature_values.arff: no instance_id");
  std::vector<int> fcols;
  for (size_t c = 0; c < feats->attributes.size(); ++c) {
    const auto& a = feats->attributes[c];
    if (static_cast<int>(c) == fi || absl::EqualsIgnoreCase(a.name, "repetition")) continue;
    if (a.type != ArffAttribute::Type::kNumeric) continue;
    if (!allowed.empty() && !allowed.count(a.name)) continue;
    fcols.push_back(static_cast<int>(c));
  }
  std::map<std::string, std::vector<float>> fvals;
  for (const auto& row : feats->rows) {
    if (!row[fi] || fvals.count(*row[fi])) continue;  // first repetition
    std::vector<float> x(fcols.size(), std::nanf(""));
    for (size_t j = 0; j < fcols.size(); ++j) {
      double v = 0;
      if (row[fcols[j]] && ParseNumber(*row[fcols[j]], &v) && std::isfinite(v)) x[j] = static_cast<float>(v);
    }
    fvals[*row[fi]] = std::move(x);
  }
  // Feature costs and presolving by the default steps.
  std::map<std::string, double> overhead;
  std::set<std::string> presolved;
  if (auto costs = ReadArffFile(dir + "/feature_costs.arff"); costs.ok()) {
    const int ci = costs->Column("instance_id");
    for (const auto& row : costs->rows) {
      if (ci < 0 || !row[ci] || overhead.count(*row[ci])) continue;
      double sum = 0;
      for (const std::string& s : desc.default_steps) {
        const int c = costs->Column(s);
        double v = 0;
        if (c >= 0 && row[c] && ParseNumber(*row[c], &v) && v > 0) sum += v;
      }
      overhead[*row[ci]] = sum;
    }
  } else if (!absl::IsNotFound(costs.status())) {
    return costs.status();
  }
  if (auto status = ReadArffFile(dir + "/feature_runstatus.arff"); status.ok()) {
    const int si = status->Column("instance_id");
    for (const auto& row : status->rows) {
      if (si < 0 || !row[si]) continue;
      for (const std::string& s : desc.default_steps) {
        const int c = status->Column(s);
        if (c >= 0 && row[c] && absl::EqualsIgnoreCase(*row[c], "presolved")) presolved.insert(*row[si]);
      }
    }
  } else if (!absl::IsNotFound(status.status())) {
    return status.status();
  }
  // Folds.
  std::map<std::string, int> fold_of;
  const int vi = cv->Column("instance_id"), vr = cv->Column("repetition"), vf = cv->Column("fold");
  if (vi < 0 || vf < 0) return absl::InvalidArgumentError("cv.arff: needs instance_id and fold");
  for (const auto& row : cv->rows) {
    double rep = 1, fold = 0;
    if (vr >= 0 && row[vr] && ParseNumber(*row[vr], &rep) && rep != 1) continue;
    if (!row[vi] || !row[vf] || !ParseNumber(*row[vf], &fold)) continue;
    fold_of[*row[vi]] = static_cast<int>(fold);
  }

  out.features.task_dim = fcols.size();
  out.features.strat_dim = algo_of.size();
  out.features.strat_x.assign(algo_of.size() * algo_of.size(), 0.0f);
  for (size_t a = 0; a < algo_of.size(); ++a) out.features.strat_x[a * algo_of.size() + a] = 1.0f;
  for (const auto& [inst, cells] : perf) {
    auto fold = fold_of.find(inst);
    if (fold == fold_of.end() || cells.size() < 2) {
      ++p.skipped_tasks;
      continue;
    }
    Problem::Task t;
    t.name = inst;
    t.fold = fold->second;
    t.overhead = overhead.count(inst) ? overhead[inst] : 0.0;
    t.presolved = presolved.count(inst) > 0;
    for (const auto& [a, c] : cells) t.entries.push_back({a, c.sum / c.n, c.all_ok});
    p.tasks.push_back(std::move(t));
    auto fv = fvals.find(inst);
    if (fv != fvals.end()) {
      out.features.task_x.insert(out.features.task_x.end(), fv->second.begin(), fv->second.end());
    } else {
      out.features.task_x.insert(out.features.task_x.end(), fcols.size(), std::nanf(""));
    }
  }
  if (p.tasks.empty()) return absl::InvalidArgumentError("ASlib scenario has no usable instances");
  return out;
}

// --- RunRecords (product path) -------------------------------------------------------------------------------

absl::StatusOr<RecordProblem> BuildRecordProblem(std::vector<RunRecord> records, const std::string& group_by,
                                                 const std::vector<Strategy>& catalog) {
  RecordProblem rp;
  rp.records = std::move(records);
  Problem& p = rp.problem;
  rp.features.task_dim = ContextFeatureWidth();
  rp.features.strat_dim = StrategyFeatureWidth();
  absl::flat_hash_map<uint64_t, uint32_t> task_of;
  std::map<std::string, uint32_t> strat_of;
  std::vector<std::map<uint32_t, Cell>> cells;
  std::vector<float> ctx, all_task_x;
  std::vector<std::string> groups;
  std::vector<std::vector<uint32_t>> task_records;
  for (size_t i = 0; i < rp.records.size(); ++i) {
    const RunRecord& r = rp.records[i];
    ctx.clear();
    EncodeContext(r.context, &ctx);
    const uint64_t key =
        StableHash(std::string_view(reinterpret_cast<const char*>(ctx.data()), ctx.size() * sizeof(float)),
                   StableHash(absl::StrCat(r.context.model.name, "\x1f", r.context.hardware.accelerator)));
    auto [ti, tnew] = task_of.try_emplace(key, static_cast<uint32_t>(task_of.size()));
    if (tnew) {
      all_task_x.insert(all_task_x.end(), ctx.begin(), ctx.end());
      cells.emplace_back();
      task_records.emplace_back();
      groups.push_back(group_by == "model"      ? r.context.model.name
                       : group_by == "hardware" ? r.context.hardware.accelerator
                                                : "");
    }
    task_records[ti->second].push_back(static_cast<uint32_t>(i));
    auto [si, snew] = strat_of.try_emplace(r.strategy_id, static_cast<uint32_t>(strat_of.size()));
    if (snew) {
      p.strategy_names.push_back(r.strategy_id);
      Strategy strategy{r.strategy_id, ComponentsFromId(r.strategy_id), ""};
      for (const Strategy& c : catalog) {
        if (c.id == r.strategy_id) strategy = c;
      }
      rp.strategies.push_back(std::move(strategy));
      EncodeStrategy(rp.strategies.back(), &rp.features.strat_x);
    }
    if (IsFailure(r.status) || IsMissing(r.metrics.e2e_latency_ms) || !(r.metrics.e2e_latency_ms > 0)) {
      ++p.skipped_rows;
      continue;
    }
    Cell& c = cells[ti->second][si->second];
    c.sum += r.metrics.e2e_latency_ms;
    c.n += 1;
  }
  for (size_t t = 0; t < cells.size(); ++t) {
    if (cells[t].size() < 2) {
      ++p.skipped_tasks;
      continue;
    }
    Problem::Task task;
    const RunRecord& first = rp.records[task_records[t].front()];
    task.name = absl::StrCat(first.context.hardware.accelerator, "/", first.context.hardware.count, "/",
                             first.context.model.name, "/", first.context.workload.prompt_tokens, "/",
                             first.context.workload.batch_size);
    task.group = groups[t];
    for (const auto& [s, c] : cells[t]) task.entries.push_back({s, c.sum / c.n, true});
    p.tasks.push_back(std::move(task));
    rp.task_records.push_back(std::move(task_records[t]));
    const float* x = all_task_x.data() + t * rp.features.task_dim;
    rp.features.task_x.insert(rp.features.task_x.end(), x, x + rp.features.task_dim);
  }
  if (p.tasks.empty()) return absl::InvalidArgumentError("no task with at least two strategies");
  return rp;
}

ProblemFeatures RawColumnFeatures(const RecordProblem& rp) {
  ProblemFeatures f;
  const std::vector<std::string> names = {"accelerator", "devices", "model", "prompt_tokens", "batch_size"};
  std::vector<std::vector<std::string>> columns(names.size());
  for (const auto& records : rp.task_records) {
    const model::TaskContext& c = rp.records[records.front()].context;
    columns[0].push_back(c.hardware.accelerator);
    columns[1].push_back(absl::StrCat(c.hardware.count));
    columns[2].push_back(c.model.name);
    columns[3].push_back(absl::StrCat(c.workload.prompt_tokens));
    columns[4].push_back(absl::StrCat(c.workload.batch_size));
  }
  TabularEncoder enc;
  enc.Fit(names, columns);
  for (size_t t = 0; t < rp.task_records.size(); ++t) enc.Encode(columns, t, &f.task_x);
  f.task_dim = enc.width();
  const size_t n = rp.problem.strategy_names.size();
  f.strat_dim = n;
  f.strat_x.assign(n * n, 0.0f);
  for (size_t s = 0; s < n; ++s) f.strat_x[s * n + s] = 1.0f;
  return f;
}

namespace {

// Scores a test task with the server's own ranking: Selector::Select over the MetaModel, with no observed runs
// (every candidate is on the model layer) and no exploration, so what is measured is the order the server
// returns. Score = rank position; values and intervals are the recommendation's (from the regression).
class MetaModelSelector : public TrainedSelector {
 public:
  MetaModelSelector(const RecordProblem& rp, std::unique_ptr<MetaModel> model)
      : rp_(rp), model_(std::move(model)), selector_(SelectorOptions{}) {}
  absl::Status Score(uint32_t task, std::vector<CandidateScore>* out) const override {
    const auto& entries = rp_.problem.tasks[task].entries;
    SelectQuery query;
    query.context = &rp_.records[rp_.task_records[task].front()].context;
    query.objective = Objective::kE2eLatency;
    query.allow_exploration = false;
    for (const auto& e : entries) query.candidates.push_back(&rp_.strategies[e.strat]);
    std::mt19937_64 rng(task);  // unused without exploration
    const std::vector<Recommendation> recs = selector_.Select(query, no_observations_, model_.get(), rng);
    out->assign(entries.size(), {});
    for (auto& c : *out) c.score = 1e300;
    for (const Recommendation& r : recs) {
      for (size_t i = 0; i < entries.size(); ++i) {
        if (query.candidates[i] != r.strategy) continue;
        CandidateScore& c = (*out)[i];
        c.score = r.rank;
        if (r.layer != EvidenceLayer::kUnknown && r.expected_value > 0) {
          c.value = r.expected_value;
          c.lo = r.interval_low;
          c.hi = r.interval_high;
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  const RecordProblem& rp_;
  std::unique_ptr<MetaModel> model_;
  Selector selector_;
  ObservedStats no_observations_;
};

}  // namespace

SelectorFactory MetaModelFactory(const RecordProblem& rp, const TrainOptions& options) {
  return [&rp, options](const std::vector<uint32_t>& train) -> absl::StatusOr<std::unique_ptr<TrainedSelector>> {
    std::vector<RunRecord> runs;
    for (uint32_t t : train) {
      for (uint32_t i : rp.task_records[t]) runs.push_back(rp.records[i]);
    }
    auto model = MetaModel::Train(runs, options);
    if (!model.ok()) return model.status();
    return std::unique_ptr<TrainedSelector>(new MetaModelSelector(rp, std::move(*model)));
  };
}

}  // namespace accelsel::eval
