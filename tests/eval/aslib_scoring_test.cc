// ASlib scored as specified, on three hand-written scenarios in tests/fixtures/aslib/ (4 instances, algorithms A
// and B, folds {i1, i2} and {i3, i4}): runtime (PAR10, cutoff, feature costs), solution quality minimised with
// runtime as a second measure, and solution quality maximised written with inline lists. Every expected figure
// is worked out by hand in the comments; description.txt is read in each YAML list form.
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "eval/eval_main.h"
#include "eval/evaluator.h"
#include "eval/loaders.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace accelsel::eval {
namespace {

using model::IsMissing;

std::string Fixture(const std::string& name) {
  const char* src = std::getenv("ACCELSEL_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/tests/fixtures/aslib/" + name;
}

// A feature-based selector that always picks the task's best algorithm (it reads the answers: a measuring
// instrument for the cost rules, not a selector). It pays the feature cost where the scenario charges one.
class PerfectSelector : public TrainedSelector {
 public:
  explicit PerfectSelector(const Problem& p) : p_(p) {}
  absl::Status Score(uint32_t task, std::vector<CandidateScore>* out) const override {
    out->clear();
    for (const auto& e : p_.tasks[task].entries) out->push_back({p_.maximize ? -e.value : e.value});
    return absl::OkStatus();
  }

 private:
  const Problem& p_;
};

struct Scored {
  std::map<std::string, SelectorMetrics> by_name;
  const SelectorMetrics& operator[](const std::string& name) const { return by_name.at(name); }
};

Scored Evaluate(const LoadedProblem& lp) {
  std::vector<NamedSelector> selectors = StandardSelectors(lp.problem, lp.features, 1);
  const Problem* p = &lp.problem;
  selectors.push_back({"perfect",
                       [p](const std::vector<uint32_t>&) -> absl::StatusOr<std::unique_ptr<TrainedSelector>> {
                         return std::unique_ptr<TrainedSelector>(new PerfectSelector(*p));
                       },
                       true});
  EvalOptions o;
  o.predefined_folds = true;
  auto r = RunEvaluation(lp.problem, selectors, o);
  EXPECT_TRUE(r.ok()) << r.status();
  Scored s;
  if (r.ok()) {
    for (const auto& [name, m] : r->selectors) s.by_name[name] = m;
  }
  return s;
}

TEST(AslibDescriptionTest, EveryListFormIsRead) {
  // Block list at column 0 (ASP-POTASSCO, QBF-2011 ...).
  AslibDescription a = ParseAslibDescription(
      "algorithm_cutoff_time: 600\ndefault_steps:\n- Static\n- Dynamic-1\nmaximize:\n- false\n"
      "performance_measures:\n- runtime\nperformance_type:\n- runtime\n");
  EXPECT_EQ(a.cutoff, 600);
  EXPECT_EQ(a.default_steps, (std::vector<std::string>{"Static", "Dynamic-1"}));
  EXPECT_EQ(a.performance_measures, std::vector<std::string>{"runtime"});
  EXPECT_EQ(a.performance_type, "runtime");
  EXPECT_FALSE(a.maximize);
  // Indented block lists (BNSL-2016, MIP-2016 ...), two measures: the first one is scored.
  AslibDescription b = ParseAslibDescription(
      "performance_measures:\n    - cost\n    - runtime\nmaximize:\n    - false\n    - false\n"
      "performance_type:\n    - solution_quality\n    - runtime\nalgorithm_cutoff_time: 100\n");
  EXPECT_EQ(b.performance_measures, (std::vector<std::string>{"cost", "runtime"}));
  EXPECT_EQ(b.performance_types, (std::vector<std::string>{"solution_quality", "runtime"}));
  EXPECT_EQ(b.performance_type, "solution_quality");
  EXPECT_EQ(b.maximize_each, (std::vector<bool>{false, false}));
  EXPECT_EQ(b.cutoff, 100);
  // Inline lists, quoted items, a maximised first measure and a minimised second one.
  AslibDescription c = ParseAslibDescription(
      "performance_measures: ['score', \"runtime\"]\nmaximize: [true, false]\n"
      "performance_type: [solution_quality, runtime]\nalgorithm_cutoff_time: '?'\ndefault_steps: [base]\n"
      "feature_steps:\n  base:\n    provides: [f1, f2]\n");
  EXPECT_EQ(c.performance_measures, (std::vector<std::string>{"score", "runtime"}));
  EXPECT_TRUE(c.maximize);
  EXPECT_EQ(c.maximize_each, (std::vector<bool>{true, false}));
  EXPECT_EQ(c.performance_type, "solution_quality");
  EXPECT_EQ(c.cutoff, 0);
  EXPECT_EQ(c.default_steps, std::vector<std::string>{"base"});
  EXPECT_EQ(c.provides["base"], (std::vector<std::string>{"f1", "f2"}));
  // Scalars instead of lists.
  AslibDescription d = ParseAslibDescription(
      "performance_measures: quality\nmaximize: true\n"
      "performance_type: solution_quality\n");
  EXPECT_EQ(d.performance_measures, std::vector<std::string>{"quality"});
  EXPECT_TRUE(d.maximize);
  EXPECT_EQ(d.performance_type, "solution_quality");
}

// PAR10 (cutoff 100): i1 A 10, B 1000 (timeout); i2 A 20, B 5; i3 A 1000 (timeout), B 30; i4 A 99, B 1000
// (150 s > cutoff). SBS for {i1, i2} is fitted on {i3, i4}: A 549.5, B 515 -> B (1000, 5); for {i3, i4} on
// {i1, i2}: A 15, B 502.5 -> A (1000, 99). SBS = 2104 / 4 = 526; VBS = (10 + 5 + 30 + 99) / 4 = 36;
// random = (505 + 12.5 + 515 + 549.5) / 4 = 395.5. A perfect feature-based selector pays the 2 s feature cost:
// 12, 7, 32 and 99 + 2 > 100 -> 1000: 1051 / 4 = 262.75.
TEST(AslibScoringTest, RuntimeScenarioIsScoredByPar10WithFeatureCosts) {
  auto lp = LoadAslibProblem(Fixture("runtime"));
  ASSERT_TRUE(lp.ok()) << lp.status();
  EXPECT_TRUE(lp->problem.aslib);
  EXPECT_FALSE(lp->problem.quality);
  EXPECT_EQ(lp->problem.measure, "runtime");
  ASSERT_EQ(lp->problem.tasks.size(), 4u);
  EXPECT_DOUBLE_EQ(lp->problem.tasks[3].entries[1].value, 1000);  // i4/B: over the cutoff
  const Scored s = Evaluate(*lp);
  EXPECT_DOUBLE_EQ(s["sbs"].par10, 526);
  EXPECT_DOUBLE_EQ(s["oracle"].par10, 36);
  EXPECT_DOUBLE_EQ(s["random"].par10, 395.5);
  EXPECT_DOUBLE_EQ(s["perfect"].par10, 262.75);
  EXPECT_DOUBLE_EQ(s["sbs"].remaining_gap, 1);
  EXPECT_DOUBLE_EQ(s["oracle"].remaining_gap, 0);
  EXPECT_NEAR(s["random"].remaining_gap, (395.5 - 36) / (526 - 36), 1e-12);
  EXPECT_NEAR(s["perfect"].remaining_gap, (262.75 - 36) / (526 - 36), 1e-12);
  EXPECT_TRUE(IsMissing(s["sbs"].mean_measure));
}

// Scored on cost (minimised): i1 A 10, B 20; i2 A 10, B 30; i3 A 40, B 20; i4 A 50, B 30. The runtimes (second
// measure) pass the 100 s cutoff or time out on three of A's and B's runs, and the feature cost is 5: neither
// counts. SBS for {i1, i2} from {i3, i4}: A 45, B 25 -> B (20, 30); for {i3, i4} from {i1, i2}: A 10, B 25 -> A
// (40, 50). SBS = 140 / 4 = 35, VBS = 70 / 4 = 17.5, random = 105 / 4 = 26.25, remaining gap of random
// = 8.75 / 17.5 = 0.5; the perfect selector scores the VBS (no feature cost).
TEST(AslibScoringTest, QualityMinimisedIgnoresCutoffAndFeatureCost) {
  auto lp = LoadAslibProblem(Fixture("quality-min"));
  ASSERT_TRUE(lp.ok()) << lp.status();
  EXPECT_FALSE(lp->problem.aslib);
  EXPECT_TRUE(lp->problem.quality);
  EXPECT_FALSE(lp->problem.maximize);
  EXPECT_EQ(lp->problem.measure, "cost");
  EXPECT_DOUBLE_EQ(lp->problem.tasks[0].entries[0].value, 10);  // i1/A: timed out, but its cost counts
  const Scored s = Evaluate(*lp);
  EXPECT_DOUBLE_EQ(s["sbs"].mean_measure, 35);
  EXPECT_DOUBLE_EQ(s["oracle"].mean_measure, 17.5);
  EXPECT_DOUBLE_EQ(s["random"].mean_measure, 26.25);
  EXPECT_DOUBLE_EQ(s["perfect"].mean_measure, 17.5);
  EXPECT_DOUBLE_EQ(s["sbs"].remaining_gap, 1);
  EXPECT_DOUBLE_EQ(s["random"].remaining_gap, 0.5);
  EXPECT_DOUBLE_EQ(s["perfect"].remaining_gap, 0);
  EXPECT_DOUBLE_EQ(s["sbs"].top1, 0);
  EXPECT_DOUBLE_EQ(s["random"].top1, 0.5);
  EXPECT_TRUE(IsMissing(s["sbs"].par10));
}

// Scored on score (maximised; inline lists, no cutoff): i1 A .9, B .5; i2 A .8, B .6; i3 A .2, B .7; i4 A .3,
// B .9. SBS for {i1, i2} from {i3, i4}: A .25, B .8 -> B (.5, .6); for {i3, i4} from {i1, i2}: A .85, B .55 -> A
// (.2, .3). SBS = 1.6 / 4 = 0.4, VBS = 3.3 / 4 = 0.825, random = 2.45 / 4 = 0.6125; remaining gap of random
// = (0.6125 - 0.825) / (0.4 - 0.825) = 0.5. Slowdown = best ÷ chosen: SBS (.9/.5 · .8/.6 · .7/.2 · .9/.3)^(1/4).
TEST(AslibScoringTest, QualityMaximisedInInlineLists) {
  auto lp = LoadAslibProblem(Fixture("quality-max"));
  ASSERT_TRUE(lp.ok()) << lp.status();
  EXPECT_TRUE(lp->problem.quality);
  EXPECT_TRUE(lp->problem.maximize);
  EXPECT_EQ(lp->problem.measure, "score");
  const Scored s = Evaluate(*lp);
  EXPECT_NEAR(s["sbs"].mean_measure, 0.4, 1e-12);
  EXPECT_NEAR(s["oracle"].mean_measure, 0.825, 1e-12);
  EXPECT_NEAR(s["random"].mean_measure, 0.6125, 1e-12);
  EXPECT_NEAR(s["perfect"].mean_measure, 0.825, 1e-12);
  EXPECT_NEAR(s["sbs"].remaining_gap, 1, 1e-12);
  EXPECT_NEAR(s["random"].remaining_gap, 0.5, 1e-12);
  EXPECT_NEAR(s["perfect"].remaining_gap, 0, 1e-12);
  EXPECT_DOUBLE_EQ(s["sbs"].top1, 0);
  EXPECT_NEAR(s["sbs"].slowdown_geomean, std::pow(0.9 / 0.5 * 0.8 / 0.6 * 0.7 / 0.2 * 0.9 / 0.3, 0.25), 1e-9);
}

// `accelsel eval --aslib` on each fixture: the JSON names the scored measure and carries every selector,
// xgb_plain included.
TEST(AslibScoringTest, JsonOfEachKindHasTheMeasureAndThePlainBaseline) {
  for (const char* name : {"runtime", "quality-min", "quality-max"}) {
    std::ostringstream out, err;
    ASSERT_EQ(EvalMain({"--aslib", Fixture(name), "--json"}, out, err), 0) << name << ": " << err.str();
    const auto j = nlohmann::json::parse(out.str());
    const bool runtime = std::string(name) == "runtime";
    EXPECT_EQ(j["performance_measure"], runtime ? "runtime" : name == std::string("quality-min") ? "cost" : "score");
    for (const char* s : {"accelsel", "xgb_plain", "knn", "sbs", "random", "oracle"}) {
      ASSERT_TRUE(j["selectors"].contains(s)) << name << " " << s;
      EXPECT_TRUE(j["selectors"][s].contains(runtime ? "par10" : "mean_measure")) << name << " " << s;
      EXPECT_TRUE(j["selectors"][s].contains("remaining_gap")) << name << " " << s;
    }
  }
}

// A quality measure that reaches 0 or below has no slowdown ratio; it is still scored by mean and gap.
TEST(AslibScoringTest, NonPositiveQualityHasNoSlowdown) {
  LoadedProblem lp;
  lp.problem.quality = true;
  lp.problem.strategy_names = {"A", "B"};
  lp.features.task_dim = 1;
  lp.features.strat_dim = 2;
  lp.features.strat_x = {1, 0, 0, 1};
  for (int t = 0; t < 4; ++t) {
    Problem::Task task;
    task.name = "t" + std::to_string(t);
    task.fold = t / 2;
    task.entries = {{0, t < 2 ? -1.0 : 2.0, true}, {1, t < 2 ? 0.0 : 1.0, true}};
    lp.problem.tasks.push_back(task);
    lp.features.task_x.push_back(static_cast<float>(t));
  }
  const Scored s = Evaluate(lp);
  EXPECT_TRUE(IsMissing(s["sbs"].slowdown_geomean));
  // VBS = (-1 - 1 + 1 + 1) / 4 = 0; SBS for {t0, t1} from {t2, t3} is B (0, 0), for {t2, t3} from {t0, t1} A (2, 2).
  EXPECT_DOUBLE_EQ(s["oracle"].mean_measure, 0);
  EXPECT_DOUBLE_EQ(s["sbs"].mean_measure, 1);
  EXPECT_DOUBLE_EQ(s["perfect"].remaining_gap, 0);
}

}  // namespace
}  // namespace accelsel::eval
