// Argument handling and dispatch of `accelsel eval` (--csv, --aslib, --llm-inference-bench).
#include "eval/eval_main.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "datasets/llm_inference_bench.h"
#include "eval/evaluator.h"
#include "eval/loaders.h"
#include "util/csv.h"
#include "util/progress.h"

namespace accelsel::eval {

using datasets::LlmBenchStrategies;
using datasets::LoadLlmInferenceBench;
using model::Objective;
using model::Strategy;
using model::TrainOptions;
using util::ReadCsvFile;

namespace {

struct Args {
  std::string csv, aslib, llm_bench, descriptors = "data/descriptors";
  std::vector<std::string> task_cols, strategy_cols;
  std::string target_col, group_col;
  bool maximize = false, json = false;
  int folds = 10;
  uint64_t seed = 1;
  int seeds = 1;            // --seeds N: seeds seed .. seed + N - 1, reported as mean, _sd and per seed
  std::string predictions;  // --predictions FILE: every scored (task, candidate) as CSV
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(p));
  }
  return out;
}

// Returns an error message, or nullopt on success.
std::optional<std::string> Parse(const std::vector<std::string>& argv, Args* a) {
  static const std::map<std::string, int> kValued = {
      {"--csv", 0},         {"--task-cols", 1}, {"--strategy-cols", 2},
      {"--target-col", 3},  {"--folds", 4},     {"--group-col", 5},
      {"--seed", 6},        {"--aslib", 7},     {"--llm-inference-bench", 8},
      {"--descriptors", 9}, {"--seeds", 10},    {"--predictions", 11}};
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string flag = argv[i], value;
    const size_t eq = flag.find('=');
    bool has_value = false;
    if (absl::StartsWith(flag, "--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    if (flag == "--maximize") {
      a->maximize = true;
      continue;
    }
    if (flag == "--json") {
      a->json = true;
      continue;
    }
    auto it = kValued.find(flag);
    if (it == kValued.end()) return "unknown argument '" + argv[i] + "'";
    if (!has_value) {
      if (i + 1 >= argv.size()) return flag + " needs a value";
      value = argv[++i];
    }
    switch (it->second) {
      case 0: a->csv = value; break;
      case 1: a->task_cols = SplitList(value); break;
      case 2: a->strategy_cols = SplitList(value); break;
      case 3: a->target_col = value; break;
      case 4:
        if (!absl::SimpleAtoi(value, &a->folds) || a->folds < 2 || a->folds > 1000) return "--folds wants 2..1000";
        break;
      case 5: a->group_col = value; break;
      case 6:
        if (!absl::SimpleAtoi(value, &a->seed)) return "--seed wants an unsigned integer";
        break;
      case 7: a->aslib = value; break;
      case 8: a->llm_bench = value; break;
      case 9: a->descriptors = value; break;
      case 10:
        if (!absl::SimpleAtoi(value, &a->seeds) || a->seeds < 1 || a->seeds > 100) return "--seeds wants 1..100";
        break;
      case 11: a->predictions = value; break;
    }
  }
  const int modes = !a->csv.empty() + !a->aslib.empty() + !a->llm_bench.empty();
  if (modes != 1) return "give exactly one of --csv, --aslib, --llm-inference-bench";
  const int column_flags = !a->task_cols.empty() + !a->strategy_cols.empty() + !a->target_col.empty();
  // None of the three: the file may be an LLM-Inference-Bench table (EvalMain reads its header).
  if (!a->csv.empty() && column_flags != 0 && column_flags != 3) {
    return "--csv needs --task-cols, --strategy-cols and --target-col (or none of them for an "
           "LLM-Inference-Bench table)";
  }
  return std::nullopt;
}

// True when the first line of `path` that is neither blank nor a '#' comment names the columns of an
// LLM-Inference-Bench table (datasets/llm_inference_bench.h), such as a node sweep's (docs/NODE.md).
bool HasLlmBenchHeader(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l.front() == '#') continue;
    std::set<std::string> columns;
    for (absl::string_view c : absl::StrSplit(l, ',')) {
      columns.insert(absl::AsciiStrToLower(
          absl::StripAsciiWhitespace(absl::StripPrefix(absl::StripSuffix(absl::StripAsciiWhitespace(c), "\""), "\""))));
    }
    for (const char* needed :
         {"hardware", "num of hardware", "framework", "model", "input output length", "batch size", "latency"}) {
      if (!columns.contains(needed)) return false;
    }
    return true;
  }
  return false;
}

// Runs `evaluate` once per seed (seed .. seed + seeds - 1) and prints one report, or the mean over seeds with
// the spread and the per-seed results when there are several. `o` is the options `evaluate` passes on: its
// on_step feeds the progress line (selector x fold x seed steps; on a terminal only, util/progress.h).
int Emit(const std::function<absl::StatusOr<EvalReport>(uint64_t seed)>& evaluate, const Args& a, EvalOptions& o,
         std::ostream& out, std::ostream& err) {
  std::vector<uint64_t> seeds;
  std::vector<EvalReport> reports;
  ProgressOptions progress_options;
  progress_options.out = &err;
  Progress progress("eval", 0, progress_options);
  int seed_index = 0;
  o.on_step = [&](int done, int total) {
    progress.SetTotal(static_cast<int64_t>(total) * a.seeds);
    progress.Update(static_cast<int64_t>(seed_index) * total + done);
  };
  for (int i = 0; i < a.seeds; ++i) {
    const uint64_t seed = a.seed + static_cast<uint64_t>(i);
    seed_index = i;
    auto report = evaluate(seed);
    if (!report.ok()) {
      o.on_step = nullptr;
      progress.Fail();
      err << "accelsel eval: seed " << seed << ": " << report.status() << "\n";
      return 1;
    }
    seeds.push_back(seed);
    reports.push_back(std::move(*report));
  }
  o.on_step = nullptr;
  progress.Finish();
  if (a.seeds == 1) {
    out << (a.json ? ReportJson(reports.front()) + "\n" : ReportTable(reports.front()));
  } else {
    out << (a.json ? SeedsReportJson(seeds, reports) + "\n" : SeedsReportTable(seeds, reports));
  }
  return 0;
}

std::string CsvField(absl::string_view v) {
  if (v.find_first_of(",\"\n") == absl::string_view::npos) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string CsvNumber(double v) { return model::IsMissing(v) ? "" : absl::StrFormat("%.6g", v); }

// Sends every scored row of `problem` to `file` (--predictions); the seed is read from `o` as each run sets it.
void WritePredictions(const Problem& problem, std::ofstream* file, EvalOptions* o) {
  *file << "seed,selector,fold,group,task,strategy,measured,predicted,lo,hi,chosen,strategy_seen\n";
  o->on_prediction = [&problem, file, o](const EvalOptions::PredictionRow& r) {
    const Problem::Task& t = problem.tasks[r.task];
    *file << o->seed << ',' << CsvField(*r.selector) << ',' << r.fold << ',' << CsvField(t.group) << ','
          << CsvField(t.name) << ',' << CsvField(problem.strategy_names[r.strategy]) << ',' << CsvNumber(r.measured)
          << ',' << CsvNumber(r.score->value) << ',' << CsvNumber(r.score->lo) << ',' << CsvNumber(r.score->hi) << ','
          << (r.chosen ? 1 : 0) << ',' << (r.strategy_seen ? 1 : 0) << '\n';
  };
}

}  // namespace

const char* EvalUsage() {
  return "usage: accelsel eval --csv FILE --task-cols C1,C2 --strategy-cols S1,S2 --target-col T [--maximize]\n"
         "                     [--folds 10] [--group-col G] [--seed N] [--seeds K] [--json]\n"
         "       accelsel eval --llm-inference-bench CSV [--descriptors DIR] [--group-col Model|Hardware]\n"
         "                     [--folds 10] [--seed N] [--seeds K] [--json]\n"
         "       accelsel eval --csv CSV ... (without the column flags: the same as --llm-inference-bench CSV, for a\n"
         "                     table with that header, such as a node sweep's data/llama-cpp/sweep.csv)\n"
         "       accelsel eval --aslib SCENARIO_DIR [--seed N] [--seeds K] [--json]\n"
         "--seeds K runs seeds N .. N+K-1 and reports the mean, <metric>_sd and the per-seed results.\n"
         "--predictions FILE (any form) writes every scored (task, candidate) of every selector as CSV: seed, "
         "selector,\n"
         "fold, group, task, strategy, measured, predicted, lo, hi, chosen, strategy_seen.\n";
}

int EvalMain(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  if (argv.size() == 1 && (argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help")) {
    out << EvalUsage();
    return 0;
  }
  Args a;
  if (auto e = Parse(argv, &a); e.has_value()) {
    err << "accelsel eval: " << *e << "\n" << EvalUsage();
    return 2;
  }
  if (!a.csv.empty() && a.target_col.empty()) {
    // `--csv TABLE` alone: an LLM-Inference-Bench table, evaluated exactly as --llm-inference-bench would.
    if (!HasLlmBenchHeader(a.csv)) {
      err << "accelsel eval: " << a.csv
          << ": not an LLM-Inference-Bench table (no Hardware, Num of Hardware, Framework, Model, Input Output "
             "Length, Batch Size, Latency header); another table needs --task-cols, --strategy-cols and "
             "--target-col\n"
          << EvalUsage();
      return 2;
    }
    a.llm_bench = std::exchange(a.csv, "");
  }
  EvalOptions o;
  o.folds = a.folds;
  o.seed = a.seed;
  std::ofstream predictions;
  if (!a.predictions.empty()) {
    predictions.open(a.predictions);
    if (!predictions) {
      err << "accelsel eval: --predictions: cannot write " << a.predictions << "\n";
      return 1;
    }
  }
  if (!a.csv.empty()) {
    auto table = ReadCsvFile(a.csv);
    if (!table.ok()) {
      err << "accelsel eval: " << table.status() << "\n";
      return 1;
    }
    CsvSpec spec{a.task_cols, a.strategy_cols, a.target_col, a.maximize, a.group_col};
    auto lp = LoadCsvProblem(*table, spec);
    if (!lp.ok()) {
      err << "accelsel eval: " << lp.status() << "\n";
      return 1;
    }
    o.leave_one_group_out = !a.group_col.empty();
    if (predictions.is_open()) WritePredictions(lp->problem, &predictions, &o);
    return Emit(
        [&](uint64_t seed) {
          o.seed = seed;
          return RunEvaluation(lp->problem, StandardSelectors(lp->problem, lp->features, seed), o);
        },
        a, o, out, err);
  }
  if (!a.aslib.empty()) {
    auto lp = LoadAslibProblem(a.aslib);
    if (!lp.ok()) {
      err << "accelsel eval: " << lp.status() << "\n";
      return 1;
    }
    o.predefined_folds = true;  // the seed changes the learners, not the scenario's folds
    if (predictions.is_open()) WritePredictions(lp->problem, &predictions, &o);
    return Emit(
        [&](uint64_t seed) {
          o.seed = seed;
          return RunEvaluation(lp->problem, StandardSelectors(lp->problem, lp->features, seed), o);
        },
        a, o, out, err);
  }
  // The same mapping as `accelsel import`, so the product's real feature path is what gets measured.
  auto records = LoadLlmInferenceBench(a.llm_bench, a.descriptors, nullptr);
  if (!records.ok()) {
    err << "accelsel eval: " << records.status() << "\n";
    return 1;
  }
  const std::string group = absl::AsciiStrToLower(a.group_col);
  if (!group.empty() && group != "model" && group != "hardware") {
    err << "accelsel eval: --llm-inference-bench groups by Model or Hardware\n";
    return 2;
  }
  const std::vector<Strategy> catalog = LlmBenchStrategies(*records);
  auto rp = BuildRecordProblem(std::move(*records), group, catalog);
  if (!rp.ok()) {
    err << "accelsel eval: " << rp.status() << "\n";
    return 1;
  }
  o.leave_one_group_out = !group.empty();
  // The plain baseline sees the table's raw columns, not the product's descriptors and engineered features.
  const ProblemFeatures raw = RawColumnFeatures(*rp);
  if (predictions.is_open()) WritePredictions(rp->problem, &predictions, &o);
  return Emit(
      [&](uint64_t seed) {
        o.seed = seed;
        TrainOptions train;
        train.xgb.seed = seed;
        train.catalog = catalog;
        // Selection is scored on e2e latency only; other heads would only cost time here.
        train.objectives = {Objective::kE2eLatency};
        train.train_peak_memory = false;
        std::vector<NamedSelector> selectors = StandardSelectors(rp->problem, rp->features, seed);
        selectors[0] = {"accelsel", MetaModelFactory(*rp, train), true};
        for (NamedSelector& s : selectors) {
          if (s.name == "xgb_plain") s = PlainXgbSelector(rp->problem, raw, seed);
        }
        return RunEvaluation(rp->problem, selectors, o);
      },
      a, o, out, err);
}

}  // namespace accelsel::eval
