// The offline evaluator: no leakage from test folds (shuffled labels fall to chance, a deliberately leaky
// selector does not), SBS chosen on training folds only, and `accelsel eval` end to end on generated files.
#include "eval/evaluator.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "eval/eval_main.h"
#include "eval/loaders.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace accelsel::eval {
namespace {

using model::MetaModel;
using model::XgbLearner;
using model::XgbLearnerOptions;

// 300 tasks, 4 strategies; the best strategy is determined by the task's first feature (quartile).
LoadedProblem Learnable(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  LoadedProblem lp;
  lp.problem.strategy_names = {"s0", "s1", "s2", "s3"};
  lp.features.task_dim = 3;
  lp.features.strat_dim = 4;
  lp.features.strat_x.assign(16, 0);
  for (int s = 0; s < 4; ++s) lp.features.strat_x[s * 4 + s] = 1;
  for (int t = 0; t < 300; ++t) {
    const double x = u(rng);
    const int best = std::min(3, static_cast<int>(x * 4));
    Problem::Task task;
    task.name = "t" + std::to_string(t);
    for (uint32_t s = 0; s < 4; ++s) {
      task.entries.push_back({s, (static_cast<int>(s) == best ? 1.0 : 2.0 + s) * (1 + 0.05 * u(rng)), true});
    }
    lp.problem.tasks.push_back(task);
    lp.features.task_x.insert(lp.features.task_x.end(),
                              {static_cast<float>(x), static_cast<float>(u(rng)), static_cast<float>(u(rng))});
  }
  return lp;
}

double Top1(const EvalReport& r, const std::string& name) {
  for (const auto& [n, m] : r.selectors) {
    if (n == name) return m.top1;
  }
  ADD_FAILURE() << "no selector " << name;
  return -1;
}

TEST(EvaluatorTest, LearnableDataIsLearned) {
  LoadedProblem lp = Learnable(1);
  EvalOptions o;
  o.folds = 5;
  auto r = RunEvaluation(lp.problem, StandardSelectors(lp.problem, lp.features, 1), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Top1(*r, "accelsel"), 0.9);
  EXPECT_GT(Top1(*r, "knn"), 0.8);
  EXPECT_DOUBLE_EQ(Top1(*r, "oracle"), 1.0);
  EXPECT_NEAR(Top1(*r, "random"), 0.25, 1e-9);
}

TEST(EvaluatorTest, ShuffledLabelsFallToChanceUnlessTheSelectorLeaks) {
  LoadedProblem lp = Learnable(2);
  std::mt19937_64 rng(7);
  for (auto& t : lp.problem.tasks) {  // labels shuffled within each task: features now say nothing
    std::vector<double> v;
    for (const auto& e : t.entries) v.push_back(e.value);
    std::shuffle(v.begin(), v.end(), rng);
    for (size_t i = 0; i < v.size(); ++i) t.entries[i].value = v[i];
  }
  EvalOptions o;
  o.folds = 5;
  std::vector<NamedSelector> honest = StandardSelectors(lp.problem, lp.features, 1);
  // A deliberately leaky selector: trains on every task, test folds included.
  std::vector<uint32_t> all(lp.problem.tasks.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  SelectorFactory inner = LearnerFactory(lp.problem, lp.features, [] {
    XgbLearnerOptions x;
    x.interval_folds = 0;
    x.params.num_rounds = 300;
    x.params.max_depth = 8;
    x.params.colsample_bynode = 1;
    x.params.colsample_bytree = 1;
    x.params.min_child_weight = 0;
    return std::make_unique<XgbLearner>(x);
  });
  honest.push_back({"leaky", [inner, all](const std::vector<uint32_t>&) { return inner(all); }, true});
  auto r = RunEvaluation(lp.problem, honest, o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const char* name : {"accelsel", "xgb_plain", "xgb_rank", "knn", "sbs"}) {
    EXPECT_LT(Top1(*r, name), 0.35) << name;  // chance is 0.25
    EXPECT_GT(Top1(*r, name), 0.15) << name;
  }
  EXPECT_GT(Top1(*r, "leaky"), 0.6);  // the check has the power to catch a leak
}

TEST(EvaluatorTest, SbsIsChosenOnTrainingFoldsOnly) {
  // Fold 0: strategy A best on every task; fold 1: B best. SBS fitted on the other fold is always wrong.
  LoadedProblem lp;
  lp.problem.strategy_names = {"A", "B"};
  lp.features.task_dim = 1;
  lp.features.strat_dim = 2;
  lp.features.strat_x = {1, 0, 0, 1};
  for (int t = 0; t < 20; ++t) {
    Problem::Task task;
    task.name = "t" + std::to_string(t);
    task.fold = t < 10 ? 0 : 1;
    const bool a_best = t < 10;
    task.entries = {{0, a_best ? 1.0 : 3.0, true}, {1, a_best ? 3.0 : 1.0, true}};
    lp.problem.tasks.push_back(task);
    lp.features.task_x.push_back(static_cast<float>(t));
  }
  EvalOptions o;
  o.predefined_folds = true;
  auto r = RunEvaluation(lp.problem, StandardSelectors(lp.problem, lp.features, 1), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(Top1(*r, "sbs"), 0.0);
}

// Predicts every candidate of a task as measured × (1 + scale × its listed APE), so every APE is known; the score is
// the prediction. Intervals [0.5, 2] × measured cover every row except those listed as uncovered.
class KnownApeSelector : public TrainedSelector {
 public:
  KnownApeSelector(const Problem& p, const std::vector<std::vector<double>>& apes,
                   const std::set<std::pair<uint32_t, uint32_t>>& uncovered, double scale)
      : p_(p), apes_(apes), uncovered_(uncovered), scale_(scale) {}
  absl::Status Score(uint32_t task, std::vector<CandidateScore>* out) const override {
    const auto& entries = p_.tasks[task].entries;
    out->assign(entries.size(), {});
    for (size_t i = 0; i < entries.size(); ++i) {
      const double truth = entries[i].value;
      CandidateScore& c = (*out)[i];
      c.value = truth * (1 + scale_ * apes_[task][i]);
      c.score = c.value;
      const bool in = uncovered_.count({task, entries[i].strat}) == 0;
      c.lo = in ? truth * 0.5 : truth * 3;
      c.hi = in ? truth * 2 : truth * 4;
    }
    return absl::OkStatus();
  }

 private:
  const Problem& p_;
  const std::vector<std::vector<double>>& apes_;
  const std::set<std::pair<uint32_t, uint32_t>>& uncovered_;
  double scale_;
};

// Scores only, no values: a selector that does not predict.
class ScoreOnlySelector : public TrainedSelector {
 public:
  explicit ScoreOnlySelector(const Problem& p) : p_(p) {}
  absl::Status Score(uint32_t task, std::vector<CandidateScore>* out) const override {
    out->assign(p_.tasks[task].entries.size(), {});
    for (size_t i = 0; i < out->size(); ++i) (*out)[i].score = static_cast<double>(i);  // always the first entry
    return absl::OkStatus();
  }

 private:
  const Problem& p_;
};

// Strategies A, B, C, D in three groups; C occurs in g3 only, so held out with g3 it is unseen; D occurs in g1 and g2,
// so it is seen whichever of them is held out. Values and APEs are dyadic: every figure below is exact.
struct KnownApeCase {
  Problem problem;
  std::vector<std::vector<double>> apes;
  std::set<std::pair<uint32_t, uint32_t>> uncovered = {{1, 0}, {3, 2}};  // (task, strategy): (t1, A), (t3, C)
  KnownApeCase() {
    problem.strategy_names = {"A", "B", "C", "D"};
    auto add = [&](const char* group, std::vector<Problem::Entry> entries, std::vector<double> task_apes) {
      Problem::Task t;
      t.name = "t" + std::to_string(problem.tasks.size());
      t.group = group;
      t.entries = std::move(entries);
      problem.tasks.push_back(t);
      apes.push_back(std::move(task_apes));
    };
    add("g1", {{0, 1.0}, {1, 2.0}, {3, 4.0}}, {0.5, 0.25, 0.125});  // predicted 1.5 2.5 4.5: A, the best
    add("g1", {{0, 2.0}, {1, 1.0}, {3, 8.0}}, {1.0, 0.75, 0.375});  // 4 1.75 11: B, the best
    add("g2", {{0, 4.0}, {1, 8.0}, {3, 1.0}}, {0.25, 0.5, 0.25});   // 5 12 1.25: D, the best
    add("g3", {{0, 2.0}, {1, 1.0}, {2, 4.0}}, {0.5, 3.0, 2.0});     // 3 4 12: A, twice the best (B)
  }
  NamedSelector Known(const std::string& name, double scale) const {
    return {name,
            [this, scale](const std::vector<uint32_t>&) -> absl::StatusOr<std::unique_ptr<TrainedSelector>> {
              return std::make_unique<KnownApeSelector>(problem, apes, uncovered, scale);
            },
            false};
  }
  NamedSelector ScoreOnly() const {
    return {"score_only",
            [this](const std::vector<uint32_t>&) -> absl::StatusOr<std::unique_ptr<TrainedSelector>> {
              return std::make_unique<ScoreOnlySelector>(problem);
            },
            false};
  }
};

const SelectorMetrics& Metrics(const std::vector<std::pair<std::string, SelectorMetrics>>& selectors,
                               const std::string& name) {
  for (const auto& [n, m] : selectors) {
    if (n == name) return m;
  }
  ADD_FAILURE() << "no selector " << name;
  static const SelectorMetrics kNone;
  return kNone;
}

TEST(EvaluatorTest, MedianApeAndMapeOverSeenStrategiesAreExact) {
  const KnownApeCase k;
  EvalOptions o;
  o.leave_one_group_out = true;
  auto r = RunEvaluation(k.problem, {k.Known("known", 1), k.ScoreOnly()}, o);
  ASSERT_TRUE(r.ok()) << r.status();
  const SelectorMetrics& m = Metrics(r->selectors, "known");
  // 12 rows, APE sum 3 (g1) + 1 (g2) + 5.5 (g3); the one unseen row is (t3, C), APE 2.
  EXPECT_DOUBLE_EQ(m.mape, 9.5 / 12);
  EXPECT_DOUBLE_EQ(m.mape_seen_strategies, 7.5 / 11);
  EXPECT_DOUBLE_EQ(m.mape_unseen_strategies, 2);
  // Sorted: .125 .25 .25 .25 .375 .5 | .5 .5 .75 1 2 3.
  EXPECT_DOUBLE_EQ(m.median_ape, 0.5);
  EXPECT_DOUBLE_EQ(m.coverage80, 10.0 / 12);
  EXPECT_DOUBLE_EQ(m.coverage80_unseen_strategies, 0);
  EXPECT_DOUBLE_EQ(m.top1, 0.75);
  EXPECT_NEAR(m.slowdown_geomean, std::pow(2.0, 0.25), 1e-12);
  const SelectorMetrics& none = Metrics(r->selectors, "score_only");
  EXPECT_TRUE(model::IsMissing(none.mape));
  EXPECT_TRUE(model::IsMissing(none.median_ape));
  EXPECT_TRUE(model::IsMissing(none.mape_seen_strategies));

  // Per held-out group; g1 has an even count: .125 .25 .375 | .5 .75 1, median (.375 + .5) / 2.
  ASSERT_EQ(r->groups.size(), 3u);
  const GroupMetrics& g1 = r->groups.at("g1");
  EXPECT_EQ(g1.tasks, 2u);
  EXPECT_EQ(g1.rows, 6u);
  EXPECT_EQ(g1.rows_unseen_strategies, 0u);
  EXPECT_DOUBLE_EQ(Metrics(g1.selectors, "known").median_ape, 0.4375);
  EXPECT_DOUBLE_EQ(Metrics(g1.selectors, "known").mape, 0.5);
  EXPECT_DOUBLE_EQ(Metrics(g1.selectors, "known").mape_seen_strategies, 0.5);
  EXPECT_TRUE(model::IsMissing(Metrics(g1.selectors, "known").mape_unseen_strategies));
  const GroupMetrics& g3 = r->groups.at("g3");
  EXPECT_EQ(g3.rows_unseen_strategies, 1u);
  EXPECT_DOUBLE_EQ(Metrics(g3.selectors, "known").mape_seen_strategies, 1.75);

  // The JSON: flat keys beside mape, and the per-group object.
  const auto j = nlohmann::json::parse(ReportJson(*r));
  const auto& known = j["selectors"]["known"];
  EXPECT_DOUBLE_EQ(known["median_ape"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(known["mape_seen_strategies"].get<double>(), 7.5 / 11);
  EXPECT_DOUBLE_EQ(known["mape_unseen_strategies"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(known["coverage80_unseen_strategies"].get<double>(), 0);
  for (const char* key : {"mape", "median_ape", "mape_seen_strategies", "mape_unseen_strategies", "coverage80"}) {
    EXPECT_FALSE(j["selectors"]["score_only"].contains(key)) << key;
    EXPECT_FALSE(j["selectors"]["random"].contains(key)) << key;
  }
  ASSERT_TRUE(j.contains("groups"));
  ASSERT_TRUE(j.contains("group_slowdown_geomean"));  // kept beside it
  const auto& g = j["groups"];
  EXPECT_EQ(g.size(), 3u);
  EXPECT_EQ(g["g1"]["tasks"], 2);
  EXPECT_EQ(g["g1"]["rows"], 6);
  EXPECT_EQ(g["g2"]["rows"], 3);
  EXPECT_EQ(g["g3"]["rows"], 3);
  EXPECT_EQ(g["g3"]["rows_unseen_strategies"], 1);
  const auto& g3k = g["g3"]["known"];
  EXPECT_DOUBLE_EQ(g3k["mape"].get<double>(), 5.5 / 3);
  EXPECT_DOUBLE_EQ(g3k["mape_seen_strategies"].get<double>(), 1.75);
  EXPECT_DOUBLE_EQ(g3k["mape_unseen_strategies"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(g3k["median_ape"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(g3k["coverage80"].get<double>(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(g3k["top1"].get<double>(), 0);
  EXPECT_NEAR(g3k["slowdown_geomean"].get<double>(), 2, 1e-12);
  EXPECT_EQ(g3k["slowdown_geomean"], j["group_slowdown_geomean"]["g3"]["known"]);
  EXPECT_DOUBLE_EQ(g["g2"]["known"]["mape"].get<double>(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(g["g2"]["known"]["median_ape"].get<double>(), 0.25);
  EXPECT_FALSE(g["g2"]["known"].contains("mape_unseen_strategies"));
  // score_only always takes the first entry (A): the best on t0, twice the best on t1.
  EXPECT_DOUBLE_EQ(g["g1"]["score_only"]["top1"].get<double>(), 0.5);
  EXPECT_FALSE(g["g1"]["score_only"].contains("mape"));
  EXPECT_FALSE(g["g1"]["score_only"].contains("median_ape"));
  EXPECT_DOUBLE_EQ(g["g2"]["oracle"]["slowdown_geomean"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(g["g3"]["random"]["top1"].get<double>(), 1.0 / 3);
  EXPECT_FALSE(g["g1"]["known"].contains("gap_closed"));

  const std::string table = ReportTable(*r);
  EXPECT_NE(table.find("median_ape"), std::string::npos) << table;
  EXPECT_NE(table.find("mape_seen"), std::string::npos) << table;  // some row had an unseen strategy
}

// --seeds: the new flat keys and the per-group figures are means with `_sd`, as the other keys.
TEST(EvaluatorTest, SeedsFoldNewKeysAndGroups) {
  const KnownApeCase k;
  EvalOptions o;
  o.leave_one_group_out = true;
  // The second "seed" doubles every APE; the choices stay the same.
  auto a = RunEvaluation(k.problem, {k.Known("known", 1), k.ScoreOnly()}, o);
  auto b = RunEvaluation(k.problem, {k.Known("known", 2), k.ScoreOnly()}, o);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto j = nlohmann::json::parse(SeedsReportJson({1, 2}, {*a, *b}));
  const auto& known = j["selectors"]["known"];
  EXPECT_DOUBLE_EQ(known["median_ape"].get<double>(), 0.75);  // 0.5 and 1
  EXPECT_NEAR(known["median_ape_sd"].get<double>(), std::sqrt(0.125), 1e-12);
  EXPECT_DOUBLE_EQ(known["mape_seen_strategies"].get<double>(), 1.5 * 7.5 / 11);
  EXPECT_TRUE(known.contains("mape_seen_strategies_sd"));
  EXPECT_DOUBLE_EQ(known["mape_unseen_strategies"].get<double>(), 3);
  EXPECT_FALSE(j["selectors"]["score_only"].contains("median_ape"));
  const auto& g3 = j["groups"]["g3"];
  EXPECT_EQ(g3["rows"], 3);
  EXPECT_EQ(g3["rows_unseen_strategies"], 1);
  EXPECT_DOUBLE_EQ(g3["known"]["median_ape"].get<double>(), 3);  // 2 and 4
  EXPECT_NEAR(g3["known"]["median_ape_sd"].get<double>(), std::sqrt(2.0), 1e-12);
  EXPECT_DOUBLE_EQ(g3["known"]["mape_seen_strategies"].get<double>(), 1.5 * 1.75);
  EXPECT_NEAR(g3["known"]["slowdown_geomean"].get<double>(), 2, 1e-12);
  EXPECT_DOUBLE_EQ(g3["known"]["slowdown_geomean_sd"].get<double>(), 0);
  EXPECT_FALSE(g3["score_only"].contains("mape"));
  EXPECT_FALSE(g3["known"].contains("seeds"));
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("ACCELSEL_TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name + "." + std::to_string(getpid());
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(EvalMainTest, CsvJsonHasEverySelectorAndCountsSkippedTasks) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> noise(0.95, 1.05);
  std::ostringstream csv;
  csv << "# generated\nHW,Model,Batch,Engine,Latency\n";
  for (const char* hw : {"h1", "h2", "h3"}) {
    for (const char* model : {"m1", "m2", "m3", "m4"}) {
      for (int batch : {1, 4, 16, 64}) {
        // e1 wins small batches, e2 large ones; e3 is always slow.
        csv << hw << "," << model << "," << batch << ",e1," << (10 + batch) * noise(rng) << "\n";
        csv << hw << "," << model << "," << batch << ",e2," << (30 + 0.3 * batch) * noise(rng) << "\n";
        csv << "'" << hw << "'," << model << "," << batch << ",\"e3\"," << 200 * noise(rng) << "\n";
      }
    }
  }
  csv << "h1,m1,1,e1,11\n";  // duplicate: averaged
  csv << "h9,m9,1,e1,5\n";   // single candidate: skipped
  csv << "h9,m9,4,e1,?\n";   // no target: ignored
  const std::string path = TempPath("eval.csv");
  Write(path, csv.str());
  std::ostringstream out, err;
  const int rc = EvalMain({"--csv", path, "--task-cols", "HW,Model,Batch", "--strategy-cols", "Engine", "--target-col",
                           "Latency", "--folds", "4", "--json"},
                          out, err);
  ASSERT_EQ(rc, 0) << err.str();
  const auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["tasks"], 48);
  EXPECT_EQ(j["skipped_tasks"], 1);
  EXPECT_EQ(j["candidates"], 3);
  for (const char* s : {"accelsel", "xgb_plain", "xgb_rank", "sbs", "random", "knn", "oracle"}) {
    ASSERT_TRUE(j["selectors"].contains(s)) << s;
    EXPECT_GE(j["selectors"][s]["slowdown_geomean"].get<double>(), 1.0);
  }
  EXPECT_TRUE(j["selectors"]["accelsel"].contains("mape"));
  EXPECT_TRUE(j["selectors"]["accelsel"].contains("coverage80"));
  EXPECT_GT(j["selectors"]["accelsel"]["top1"].get<double>(), j["selectors"]["sbs"]["top1"].get<double>());

  std::ostringstream out2, err2;
  ASSERT_EQ(EvalMain({"--csv", path, "--task-cols", "HW,Model,Batch", "--strategy-cols", "Engine", "--target-col",
                      "Latency", "--group-col", "Model", "--json"},
                     out2, err2),
            0)
      << err2.str();
  EXPECT_NE(nlohmann::json::parse(out2.str())["protocol"].get<std::string>().find("leave-one-group-out"),
            std::string::npos);
}

// The progress line counts selector x fold x seed steps on stderr when enabled, and is absent otherwise.
TEST(EvalMainTest, ProgressCountsStepsOnStderrOnlyWhenEnabled) {
  std::ostringstream csv;
  csv << "HW,Model,Batch,Engine,Latency\n";
  for (const char* model : {"m1", "m2", "m3", "m4"}) {
    for (int batch : {1, 4, 16}) {
      csv << "h1," << model << "," << batch << ",e1," << 10 + batch << "\n";
      csv << "h1," << model << "," << batch << ",e2," << 30 + 0.3 * batch << "\n";
    }
  }
  const std::string path = TempPath("eval-progress.csv");
  Write(path, csv.str());
  const std::vector<std::string> args = {"--csv",           path,     "--task-cols",  "HW,Model,Batch",
                                         "--strategy-cols", "Engine", "--target-col", "Latency",
                                         "--folds",         "2",      "--seeds",      "2",
                                         "--json"};
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "1", 1), 0);
  std::ostringstream out, err;
  const int rc = EvalMain(args, out, err);
  ASSERT_EQ(setenv("ACCELSEL_PROGRESS", "0", 1), 0);
  ASSERT_EQ(rc, 0) << err.str();
  const std::string e = err.str();
  ASSERT_FALSE(e.empty());
  EXPECT_EQ(e.back(), '\n');
  // 5 selectors (accelsel, xgb_plain, xgb_rank, knn, sbs) x 2 folds x 2 seeds.
  EXPECT_EQ(e.substr(e.rfind('\r') + 1).rfind("eval: 20/20 (100%) ", 0), 0u) << e;
  EXPECT_NO_THROW((void)nlohmann::json::parse(out.str()));  // stdout is the JSON alone

  std::ostringstream quiet_out, quiet_err;
  ASSERT_EQ(EvalMain(args, quiet_out, quiet_err), 0) << quiet_err.str();
  EXPECT_EQ(quiet_err.str(), "");
  EXPECT_EQ(quiet_out.str().find('\r'), std::string::npos);
}

// --predictions: one CSV row per (selector, test task, candidate), the measured value beside the prediction, one
// first place per selector and task; selectors that only rank leave the value columns empty.
TEST(EvalMainTest, PredictionsListEveryScoredCandidate) {
  std::ostringstream csv;
  csv << "HW,Model,Batch,Engine,Latency\n";
  for (const char* model : {"m1", "m2", "m3", "m4"}) {
    for (int batch : {1, 4, 16}) {
      csv << "h1," << model << "," << batch << ",e1," << 10 + batch << "\n";
      csv << "h1," << model << "," << batch << ",e2," << 30 + 0.3 * batch << "\n";
    }
  }
  const std::string path = TempPath("eval-predictions.csv");
  const std::string predictions = TempPath("eval-predictions-out.csv");
  Write(path, csv.str());
  std::ostringstream out, err;
  ASSERT_EQ(EvalMain({"--csv", path, "--task-cols", "HW,Model,Batch", "--strategy-cols", "Engine", "--target-col",
                      "Latency", "--folds", "3", "--predictions", predictions},
                     out, err),
            0)
      << err.str();
  std::ifstream in(predictions);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "seed,selector,fold,group,task,strategy,measured,predicted,lo,hi,chosen,strategy_seen");
  std::map<std::string, int> rows, chosen, predicted;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    ASSERT_EQ(f.size(), 12u) << line;
    rows[f[1]] += 1;
    chosen[f[1]] += f[10] == "1";
    predicted[f[1]] += !f[7].empty();
    EXPECT_EQ(f[0], "1");
    EXPECT_EQ(f[11], "1");  // both engines run on every task
    EXPECT_GT(std::stod(f[6]), 0) << line;
  }
  // 12 tasks x 2 candidates for each of the five selectors; one first place per task.
  for (const char* selector : {"accelsel", "xgb_plain", "xgb_rank", "knn", "sbs"}) {
    EXPECT_EQ(rows[selector], 24) << selector;
    EXPECT_EQ(chosen[selector], 12) << selector;
  }
  EXPECT_EQ(predicted["accelsel"], 24);  // values from its regression
  EXPECT_EQ(predicted["sbs"], 0);        // ranks only
  std::ostringstream bad_out, bad_err;
  EXPECT_EQ(EvalMain({"--csv", path, "--task-cols", "HW,Model,Batch", "--strategy-cols", "Engine", "--target-col",
                      "Latency", "--predictions", TempPath("no-such-dir") + "/p.csv"},
                     bad_out, bad_err),
            1);
  EXPECT_NE(bad_err.str().find("--predictions"), std::string::npos) << bad_err.str();
}

TEST(EvalMainTest, UsageErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(EvalMain({}, out, err), 2);
  EXPECT_EQ(EvalMain({"--csv", "x.csv"}, out, err), 2);
  EXPECT_EQ(EvalMain({"--aslib"}, out, err), 2);
  EXPECT_EQ(EvalMain({"--bogus"}, out, err), 2);
  EXPECT_EQ(EvalMain({"--aslib", TempPath("no-such-dir")}, out, err), 1);
  std::ostringstream help, help_err;
  EXPECT_EQ(EvalMain({"--help"}, help, help_err), 0);  // `accelsel eval --help`: the usage on stdout, exit 0
  EXPECT_NE(help.str().find("usage: accelsel eval"), std::string::npos) << help.str();
  EXPECT_TRUE(help_err.str().empty()) << help_err.str();
}

TEST(EvalMainTest, AslibScenarioEndToEnd) {
  const std::string dir = TempPath("aslib");
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  Write(dir + "/description.txt",
        "scenario_id: TOY\nperformance_measures:\n  - runtime\nmaximize:\n  - false\n"
        "performance_type:\n  - runtime\nalgorithm_cutoff_time: 100\ndefault_steps:\n  - base\n"
        "feature_steps:\n  base:\n    provides:\n      - f1\n      - f2\n  extra:\n    provides:\n      - f3\n");
  std::ostringstream runs, feats, cv, costs;
  runs << "@RELATION runs\n@ATTRIBUTE instance_id STRING\n@ATTRIBUTE repetition NUMERIC\n"
          "@ATTRIBUTE algorithm STRING\n@ATTRIBUTE runtime NUMERIC\n"
          "@ATTRIBUTE runstatus {ok, timeout, memout}\n@DATA\n";
  feats << "@RELATION f\n@ATTRIBUTE instance_id STRING\n@ATTRIBUTE repetition NUMERIC\n"
           "@ATTRIBUTE f1 NUMERIC\n@ATTRIBUTE f2 NUMERIC\n@ATTRIBUTE f3 NUMERIC\n@DATA\n";
  cv << "@RELATION cv\n@ATTRIBUTE instance_id STRING\n@ATTRIBUTE repetition NUMERIC\n@ATTRIBUTE fold NUMERIC\n@DATA\n";
  costs << "@RELATION c\n@ATTRIBUTE instance_id STRING\n@ATTRIBUTE repetition NUMERIC\n@ATTRIBUTE base NUMERIC\n"
           "@ATTRIBUTE extra NUMERIC\n@DATA\n";
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < 120; ++i) {
    const double x = u(rng);
    const std::string id = i % 2 ? "'inst " + std::to_string(i) + "'" : "\"inst " + std::to_string(i) + "\"";
    // 'a' is fast when f1 < 0.5, 'b' otherwise; the slow one times out.
    runs << id << ",1,'a'," << (x < 0.5 ? 1 + x : 100) << "," << (x < 0.5 ? "ok" : "timeout") << "\n";
    runs << id << ",1,\"b\"," << (x < 0.5 ? "?" : "2") << "," << (x < 0.5 ? "timeout" : "ok") << "\n";
    runs << id << ",1,c,50,ok\n";
    feats << id << ",1," << x << "," << (i % 7 == 0 ? "?" : "0.3") << "," << u(rng) << "\n";
    cv << id << ",1," << (1 + i % 10) << "\n";
    costs << id << ",1,0.5,?\n";
  }
  Write(dir + "/algorithm_runs.arff", runs.str());
  Write(dir + "/feature_values.arff", feats.str());
  Write(dir + "/cv.arff", cv.str());
  Write(dir + "/feature_costs.arff", costs.str());
  std::ostringstream out, err;
  ASSERT_EQ(EvalMain({"--aslib", dir, "--json"}, out, err), 0) << err.str();
  const auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["tasks"], 120);
  const auto& sel = j["selectors"];
  EXPECT_NEAR(sel["oracle"]["remaining_gap"].get<double>(), 0.0, 1e-9);
  EXPECT_NEAR(sel["sbs"]["remaining_gap"].get<double>(), 1.0, 1e-9);
  EXPECT_LT(sel["accelsel"]["remaining_gap"].get<double>(), 0.5);
  ASSERT_TRUE(sel.contains("xgb_plain"));
  EXPECT_TRUE(sel["xgb_plain"].contains("remaining_gap"));
  EXPECT_FALSE(sel.contains("xgb_rank"));  // one of accelsel's inner candidates on ASlib
  EXPECT_GT(sel["accelsel"]["top1"].get<double>(), 0.8);
  // The oracle's PAR10 is the mean best runtime (no feature cost); a selector that is always right pays 0.5 s.
  EXPECT_GT(sel["accelsel"]["par10"].get<double>(), sel["oracle"]["par10"].get<double>());
  auto d = ParseAslibDescription(
      "algorithm_cutoff_time: 100\ndefault_steps: [base]\nfeature_steps:\n  base:\n    provides: [f1, f2]\n");
  EXPECT_EQ(d.cutoff, 100);
  ASSERT_EQ(d.default_steps.size(), 1u);
  EXPECT_EQ(d.provides["base"].size(), 2u);
}

// --seeds N: each selector's flat keys are the mean over the seeds, <key>_sd the spread, seeds the per-seed
// results; on a scenario with fixed folds SBS, random and the oracle do not move with the seed.
TEST(EvalMainTest, SeedsReportMeanSpreadAndPerSeedResults) {
  const char* src = std::getenv("ACCELSEL_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  const std::string dir = std::string(src) + "/tests/fixtures/aslib/runtime";
  std::ostringstream out, err;
  ASSERT_EQ(EvalMain({"--aslib", dir, "--seed", "3", "--seeds", "3", "--json"}, out, err), 0) << err.str();
  const auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["seed_values"], nlohmann::json({3, 4, 5}));
  for (const char* name : {"accelsel", "xgb_plain", "knn", "sbs", "random", "oracle"}) {
    const auto& s = j["selectors"][name];
    ASSERT_EQ(s["seeds"].size(), 3u) << name;
    double sum = 0;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(s["seeds"][i]["seed"], 3 + i) << name;
      sum += s["seeds"][i]["par10"].get<double>();
    }
    EXPECT_NEAR(s["par10"].get<double>(), sum / 3, 1e-9) << name;
    for (const char* key : {"top1_sd", "slowdown_geomean_sd", "remaining_gap_sd", "par10_sd"}) {
      EXPECT_TRUE(s.contains(key)) << name << " " << key;
    }
  }
  EXPECT_DOUBLE_EQ(j["selectors"]["sbs"]["par10"].get<double>(), 526);  // tests/eval/aslib_scoring_test.cc
  EXPECT_DOUBLE_EQ(j["selectors"]["sbs"]["par10_sd"].get<double>(), 0);
  // One seed: the plain report, no _sd keys.
  std::ostringstream one, err1;
  ASSERT_EQ(EvalMain({"--aslib", dir, "--json"}, one, err1), 0) << err1.str();
  EXPECT_FALSE(nlohmann::json::parse(one.str())["selectors"]["sbs"].contains("par10_sd"));
  // The table form prints mean ± sd.
  std::ostringstream table, err2;
  ASSERT_EQ(EvalMain({"--aslib", dir, "--seeds", "2"}, table, err2), 0) << err2.str();
  EXPECT_NE(table.str().find("seeds 1..2"), std::string::npos) << table.str();
  std::ostringstream bad, err3;
  EXPECT_EQ(EvalMain({"--aslib", dir, "--seeds", "0"}, bad, err3), 2);
}

// `--csv TABLE` without column flags on an LLM-Inference-Bench table (here shaped like a node sweep, extra columns
// and a leading comment included) is the --llm-inference-bench path; on another table it is a usage error.
TEST(EvalMainTest, CsvWithoutColumnFlagsReadsAnLlmBenchTable) {
  const char* src = std::getenv("ACCELSEL_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  const std::string descriptors = std::string(src) + "/data/descriptors";
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> noise(0.95, 1.05);
  std::ostringstream csv;
  csv << "# a sweep\nHardware,Num of Hardware,Framework,Model,Input Output Length,Batch Size,Latency,Throughput,"
         "Job,quant\n";
  for (const char* model : {"m1", "m2", "m3", "m4"}) {
    for (int length : {32, 128}) {
      for (int batch : {1, 2, 4}) {
        // a wins short jobs, b long ones, c is always slow.
        const double la = (0.1 + 0.004 * length * batch) * noise(rng), lb = (0.3 + 0.001 * length * batch) * noise(rng);
        csv << "Test CPU (2 cores),1,llamacpp:a," << model << "," << length << "," << batch << "," << la << ",1,j,x\n";
        csv << "Test CPU (2 cores),1,llamacpp:b," << model << "," << length << "," << batch << "," << lb << ",1,j,x\n";
        csv << "Test CPU (2 cores),1,llamacpp:c," << model << "," << length << "," << batch << "," << 2 * noise(rng)
            << ",1,j,x\n";
      }
    }
  }
  const std::string path = TempPath("sweep.csv");
  Write(path, csv.str());
  std::ostringstream by_csv, err1, by_flag, err2;
  ASSERT_EQ(EvalMain({"--csv", path, "--descriptors", descriptors, "--folds", "3", "--json"}, by_csv, err1), 0)
      << err1.str();
  ASSERT_EQ(
      EvalMain({"--llm-inference-bench", path, "--descriptors", descriptors, "--folds", "3", "--json"}, by_flag, err2),
      0)
      << err2.str();
  const auto a = nlohmann::json::parse(by_csv.str()), b = nlohmann::json::parse(by_flag.str());
  EXPECT_EQ(a["tasks"], 24);
  EXPECT_EQ(a["candidates"], 3);
  EXPECT_EQ(a["tasks"], b["tasks"]);
  EXPECT_EQ(a["selectors"]["sbs"], b["selectors"]["sbs"]);
  EXPECT_DOUBLE_EQ(a["selectors"]["accelsel"]["slowdown_geomean"].get<double>(),
                   b["selectors"]["accelsel"]["slowdown_geomean"].get<double>());

  Write(path, "HW,Engine,Latency\nh1,e1,3\nh1,e2,4\n");
  std::ostringstream out, err;
  EXPECT_EQ(EvalMain({"--csv", path}, out, err), 2);
  EXPECT_NE(err.str().find("not an LLM-Inference-Bench table"), std::string::npos) << err.str();
  EXPECT_EQ(EvalMain({"--csv", path, "--target-col", "Latency"}, out, err), 2);  // some column flags, not all
}

// CI smoke test on the data the repo ships: the product path (import mapping + descriptors + MetaModel) beats
// SBS and random by a wide margin on LLM-Inference-Bench framework selection, with calibrated-ish intervals.
TEST(EvalMainTest, LlmInferenceBenchSmoke) {
  const char* src = std::getenv("ACCELSEL_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  const std::string root(src);
  std::ostringstream out, err;
  ASSERT_EQ(EvalMain({"--llm-inference-bench", root + "/data/llm-inference-bench/throughput_all_results.csv",
                      "--descriptors", root + "/data/descriptors", "--folds", "3", "--json"},
                     out, err),
            0)
      << err.str();
  const auto j = nlohmann::json::parse(out.str());
  EXPECT_GT(j["tasks"].get<int>(), 1000);
  const auto& sel = j["selectors"];
  const double ours = sel["accelsel"]["slowdown_geomean"].get<double>();
  EXPECT_LT(ours, 1.02);
  EXPECT_LT(ours, sel["sbs"]["slowdown_geomean"].get<double>());
  EXPECT_GT(sel["accelsel"]["top1"].get<double>(), 0.9);
  EXPECT_GT(sel["accelsel"]["coverage80"].get<double>(), 0.7);
  EXPECT_LT(sel["accelsel"]["coverage80"].get<double>(), 0.95);
  // The plain baseline (raw columns, library defaults) is reported beside it.
  ASSERT_TRUE(sel.contains("xgb_plain"));
  EXPECT_LT(sel["xgb_plain"]["slowdown_geomean"].get<double>(), sel["sbs"]["slowdown_geomean"].get<double>());
  EXPECT_TRUE(sel["xgb_plain"].contains("mape"));
}

}  // namespace
}  // namespace accelsel::eval
