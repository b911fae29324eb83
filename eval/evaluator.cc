// Offline evaluation engine; see evaluator.h. Every selector is fitted on the training folds only: the factory
// receives the training task ids and nothing else of the test fold reaches it.
#include "eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "eval/baselines.h"
#include "nlohmann/json.hpp"

namespace accelsel::eval {

using model::CandidateRef;
using model::Dataset;
using model::IsMissing;
using model::kMissing;
using model::Learner;
using model::LogPrediction;
using model::XgbLearner;
using model::XgbLearnerOptions;

namespace {

constexpr double kAslibFloorS = 0.01;  // runtimes are measured to about 10 ms; log(0) must not occur

double LogTarget(const Problem& p, double v) {
  if (p.quality) return p.maximize ? -v : v;  // a quality measure may be 0 or negative: its own scale
  const double floor = p.aslib ? kAslibFloorS : 1e-12;
  return p.maximize ? -std::log(std::max(v, floor)) : std::log(std::max(v, floor));
}

// Cost of running entry `e` of `task` as chosen by a selector.
double SelectorCost(const Problem& p, const Problem::Task& task, const Problem::Entry& e, bool pays_overhead) {
  if (!p.aslib) return e.value;
  if (!pays_overhead) return e.value;
  if (task.presolved) return std::max(task.overhead, kAslibFloorS);
  const double t = e.value + task.overhead;
  return e.ok && t <= p.cutoff ? t : p.par_factor * p.cutoff;
}

// Best entry value of a task (VBS / oracle).
double BestValue(const Problem& p, const Problem::Task& t) {
  double best = p.maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  for (const auto& e : t.entries) best = p.maximize ? std::max(best, e.value) : std::min(best, e.value);
  return best;
}

// log(chosen ÷ best) for minimised objectives, log(best ÷ chosen) for maximised ones; ≥ 0 up to overheads.
double LogSlowdown(const Problem& p, double best, double chosen_cost) {
  const double floor = p.aslib ? kAslibFloorS : 1e-12;
  if (p.maximize) return std::log(std::max(best, floor) / std::max(chosen_cost, floor));
  return std::log(std::max(chosen_cost, floor) / std::max(best, floor));
}

// Entries strictly better than entry `c`.
int BetterCount(const Problem& p, const Problem::Task& t, size_t c) {
  int n = 0;
  for (const auto& e : t.entries) {
    if (p.maximize ? e.value > t.entries[c].value : e.value < t.entries[c].value) ++n;
  }
  return n;
}

struct Accumulator {
  double top1 = 0, top3 = 0, log_sd = 0, cost = 0, ape = 0, covered = 0, n_pred = 0, n_interval = 0;
  // Prediction rows split by whether the outer fold's training tasks hold the row's strategy.
  double ape_seen = 0, n_seen = 0, ape_unseen = 0, n_unseen = 0, covered_unseen = 0, n_interval_unseen = 0;
  std::vector<double> apes;  // every APE, for the median
  uint64_t tasks = 0;
  void AddChoice(const Problem& p, const Problem::Task& t, size_t c, bool pays_overhead) {
    const double best = BestValue(p, t);
    const double cost_c = SelectorCost(p, t, t.entries[c], pays_overhead);
    const int better = BetterCount(p, t, c);
    top1 += better == 0;
    top3 += better < 3;
    log_sd += LogSlowdown(p, best, cost_c);
    cost += cost_c;
    ++tasks;
  }
  void AddPrediction(const Problem& p, const CandidateScore& c, double truth, bool seen) {
    const double e = std::abs(c.value - truth) / std::max(std::abs(truth), p.aslib ? kAslibFloorS : 1e-12);
    ape += e;
    n_pred += 1;
    apes.push_back(e);
    (seen ? ape_seen : ape_unseen) += e;
    (seen ? n_seen : n_unseen) += 1;
    if (IsMissing(c.lo)) return;
    const bool in = truth >= c.lo && truth <= c.hi;
    n_interval += 1;
    covered += in;
    if (!seen) {
      n_interval_unseen += 1;
      covered_unseen += in;
    }
  }
};

// Expected figures of a uniform choice among the task's candidates (`random`) and of the per-task best.
void AddRandomAndOracle(const Problem& p, const Problem::Task& t, Accumulator* random, Accumulator* oracle) {
  const double best = BestValue(p, t);
  const double k = static_cast<double>(t.entries.size());
  for (size_t c = 0; c < t.entries.size(); ++c) {
    const int better = BetterCount(p, t, c);
    random->top1 += (better == 0) / k;
    random->top3 += (better < 3) / k;
    random->log_sd += LogSlowdown(p, best, t.entries[c].value) / k;
    random->cost += t.entries[c].value / k;
  }
  ++random->tasks;
  oracle->top1 += 1;
  oracle->top3 += 1;
  oracle->cost += best;
  ++oracle->tasks;
}

double Median(std::vector<double> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  if (v.size() % 2 == 1) return v[mid];
  const double upper = v[mid];
  return (*std::max_element(v.begin(), v.begin() + mid) + upper) / 2;
}

class LearnerSelector : public TrainedSelector {
 public:
  LearnerSelector(const Problem& p, const ProblemFeatures& f, std::unique_ptr<Learner> learner, bool values)
      : p_(p), f_(f), learner_(std::move(learner)), values_(values) {}
  absl::Status Score(uint32_t task, std::vector<CandidateScore>* out) const override {
    const auto& entries = p_.tasks[task].entries;
    std::vector<CandidateRef> refs(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      refs[i] = {entries[i].strat, f_.strat_x.data() + size_t{entries[i].strat} * f_.strat_dim};
    }
    std::vector<LogPrediction> lp;
    if (auto s = learner_->Predict(f_.task_x.data() + size_t{task} * f_.task_dim, refs, &lp); !s.ok()) return s;
    out->assign(entries.size(), {});
    for (size_t i = 0; i < lp.size(); ++i) {
      (*out)[i].score = lp[i].rank_score();
      if (!values_) continue;
      const double sign = p_.maximize ? -1.0 : 1.0;
      // Back from the learner's target (LogTarget) to the objective's unit.
      auto unit = [&](double y) { return p_.quality ? sign * y : std::exp(sign * y); };
      (*out)[i].value = unit(lp[i].mean);
      if (!std::isnan(lp[i].lo)) {
        const double a = unit(lp[i].lo), b = unit(lp[i].hi);
        (*out)[i].lo = std::min(a, b);
        (*out)[i].hi = std::max(a, b);
      }
    }
    return absl::OkStatus();
  }
  bool uses_features() const override {
    const auto* a = dynamic_cast<const AutoLearner*>(learner_.get());
    return learner_->name() != "sbs" && (a == nullptr || !a->uses_sbs());
  }
  std::string chosen() const override {
    const auto* a = dynamic_cast<const AutoLearner*>(learner_.get());
    return a == nullptr ? "" : a->chosen();
  }

 private:
  const Problem& p_;
  const ProblemFeatures& f_;
  std::unique_ptr<Learner> learner_;
  bool values_;
};

}  // namespace

SelectorFactory LearnerFactory(const Problem& problem, const ProblemFeatures& features,
                               std::function<std::unique_ptr<Learner>()> make) {
  return [&problem, &features,
          make](const std::vector<uint32_t>& train_tasks) -> absl::StatusOr<std::unique_ptr<TrainedSelector>> {
    Dataset d;
    d.task_dim = features.task_dim;
    d.strat_dim = features.strat_dim;
    d.strat_x = features.strat_x;
    d.strat_key.resize(problem.strategy_names.size());
    std::iota(d.strat_key.begin(), d.strat_key.end(), 0);
    d.task_x.reserve(train_tasks.size() * features.task_dim);
    for (size_t i = 0; i < train_tasks.size(); ++i) {
      const uint32_t t = train_tasks[i];
      const float* x = features.task_x.data() + size_t{t} * features.task_dim;
      d.task_x.insert(d.task_x.end(), x, x + features.task_dim);
      for (const auto& e : problem.tasks[t].entries) {
        d.rows.push_back({static_cast<uint32_t>(i), e.strat, static_cast<float>(LogTarget(problem, e.value))});
      }
    }
    std::unique_ptr<Learner> learner = make();
    if (auto s = learner->Fit(d); !s.ok()) return s;
    const bool values = learner->name() == "xgb_reg";
    return std::unique_ptr<TrainedSelector>(new LearnerSelector(problem, features, std::move(learner), values));
  };
}

NamedSelector PlainXgbSelector(const Problem& problem, const ProblemFeatures& features, uint64_t seed) {
  const XgbLearnerOptions plain = PlainXgbOptions(seed);
  return {"xgb_plain", LearnerFactory(problem, features, [plain] { return std::make_unique<XgbLearner>(plain); }),
          true};
}

std::vector<NamedSelector> StandardSelectors(const Problem& problem, const ProblemFeatures& features, uint64_t seed) {
  const Aggregate agg = problem.aslib     ? Aggregate::kRawMean
                        : problem.quality ? Aggregate::kMean
                                          : Aggregate::kLogRegret;
  XgbLearnerOptions reg;
  reg.params.seed = seed;
  XgbLearnerOptions rank = reg;
  rank.mode = XgbLearnerOptions::Mode::kPairwise;
  rank.interval_folds = 0;
  std::vector<NamedSelector> out = {
      {"accelsel", LearnerFactory(problem, features, [reg, agg] { return std::make_unique<AutoLearner>(reg, agg); }),
       true},
      PlainXgbSelector(problem, features, seed),
      {"xgb_rank", LearnerFactory(problem, features, [rank] { return std::make_unique<XgbLearner>(rank); }), true},
      {"knn", LearnerFactory(problem, features, [agg] { return std::make_unique<KnnLearner>(10, agg); }), true},
      {"sbs", LearnerFactory(problem, features, [agg] { return std::make_unique<SbsLearner>(agg); }), false},
  };
  // On ASlib the pairwise ranker is one of accelsel's inner candidates already; a separate run would only cost
  // time.
  if (problem.aslib || problem.quality) {
    out.erase(std::find_if(out.begin(), out.end(), [](const NamedSelector& s) { return s.name == "xgb_rank"; }));
  }
  return out;
}

absl::StatusOr<EvalReport> RunEvaluation(const Problem& p, const std::vector<NamedSelector>& selectors,
                                         const EvalOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const size_t n = p.tasks.size();
  if (n < 2) return absl::FailedPreconditionError("fewer than two usable tasks");
  // Fold of every task.
  std::vector<int> fold(n, 0);
  int num_folds = 0;
  EvalReport report;
  if (o.leave_one_group_out) {
    std::map<std::string, int> ids;
    for (size_t t = 0; t < n; ++t) fold[t] = ids.try_emplace(p.tasks[t].group, ids.size()).first->second;
    num_folds = static_cast<int>(ids.size());
    report.protocol = absl::StrCat("leave-one-group-out (", num_folds, " groups)");
  } else if (o.predefined_folds) {
    std::map<int, int> ids;
    for (size_t t = 0; t < n; ++t) fold[t] = ids.try_emplace(p.tasks[t].fold, ids.size()).first->second;
    num_folds = static_cast<int>(ids.size());
    report.protocol = absl::StrCat("predefined folds (", num_folds, ")");
  } else {
    num_folds = std::max(2, std::min<int>(o.folds, static_cast<int>(n)));
    std::vector<uint32_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(o.seed);
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i = 0; i < n; ++i) fold[order[i]] = static_cast<int>(i % num_folds);
    report.protocol = absl::StrCat(num_folds, "-fold by task (seed ", o.seed, ")");
  }
  if (num_folds < 2) return absl::FailedPreconditionError("need at least two folds/groups");

  // Slowdowns are ratios: meaningless for a quality measure that reaches 0 or below (runtimes are floored).
  bool all_positive = true;
  std::set<uint32_t> strategies;
  double entries = 0;
  for (const auto& t : p.tasks) {
    for (const auto& e : t.entries) {
      strategies.insert(e.strat);
      all_positive = all_positive && (e.value > 0 || !p.quality);
    }
    entries += t.entries.size();
  }
  const size_t num_strategies =
      std::max<size_t>(p.strategy_names.size(), strategies.empty() ? 0 : *strategies.rbegin() + 1);
  auto finish = [&](const Accumulator& a) {
    SelectorMetrics m;
    const double tn = std::max<double>(1, a.tasks);
    m.tasks = a.tasks;
    m.top1 = a.top1 / tn;
    m.top3 = a.top3 / tn;
    m.slowdown_geomean = all_positive ? std::exp(a.log_sd / tn) : kMissing;
    if (p.aslib) m.par10 = a.cost / tn;
    if (p.quality) m.mean_measure = a.cost / tn;
    if (a.n_pred > 0) {
      m.mape = a.ape / a.n_pred;
      m.median_ape = Median(a.apes);
    }
    if (a.n_seen > 0) m.mape_seen_strategies = a.ape_seen / a.n_seen;
    if (a.n_unseen > 0) m.mape_unseen_strategies = a.ape_unseen / a.n_unseen;
    if (a.n_interval > 0) m.coverage80 = a.covered / a.n_interval;
    if (a.n_interval_unseen > 0) m.coverage80_unseen_strategies = a.covered_unseen / a.n_interval_unseen;
    return m;
  };

  std::vector<Accumulator> acc(selectors.size());
  std::vector<std::map<std::string, int>> ranked_by(selectors.size());
  std::vector<std::string> fold_group(num_folds);
  for (size_t t = 0; t < n; ++t) fold_group[fold[t]] = p.tasks[t].group;
  for (int f = 0; f < num_folds; ++f) {
    std::vector<uint32_t> train, test;
    for (size_t t = 0; t < n; ++t) (fold[t] == f ? test : train).push_back(static_cast<uint32_t>(t));
    if (test.empty() || train.empty()) continue;
    std::vector<bool> seen(num_strategies, false);
    for (uint32_t t : train) {
      for (const auto& e : p.tasks[t].entries) seen[e.strat] = true;
    }
    GroupMetrics* group = nullptr;
    if (o.leave_one_group_out) {
      group = &report.groups[fold_group[f]];
      group->tasks = test.size();
      for (uint32_t t : test) {
        group->rows += p.tasks[t].entries.size();
        for (const auto& e : p.tasks[t].entries) group->rows_unseen_strategies += !seen[e.strat];
      }
    }
    for (size_t s = 0; s < selectors.size(); ++s) {
      auto trained = selectors[s].factory(train);
      if (!trained.ok()) {
        return absl::Status(trained.status().code(),
                            absl::StrCat(selectors[s].name, " fold ", f, ": ", trained.status().message()));
      }
      const std::string chosen = (*trained)->chosen();
      if (!chosen.empty()) ++ranked_by[s][chosen];
      std::vector<CandidateScore> scores;
      const double log_sd_before = acc[s].log_sd;
      Accumulator in_fold;  // this fold alone: the held-out group's figures
      for (uint32_t t : test) {
        if (auto st = (*trained)->Score(t, &scores); !st.ok()) return st;
        const Problem::Task& task = p.tasks[t];
        size_t c = 0;
        for (size_t i = 1; i < scores.size(); ++i) {
          if (scores[i].score < scores[c].score) c = i;
        }
        const bool pays = selectors[s].pays_overhead && (*trained)->uses_features();
        acc[s].AddChoice(p, task, c, pays);
        in_fold.AddChoice(p, task, c, pays);
        for (size_t i = 0; i < scores.size(); ++i) {
          if (o.on_prediction) {
            o.on_prediction({&selectors[s].name, t, task.entries[i].strat, task.entries[i].value, &scores[i], i == c,
                             seen[task.entries[i].strat], f});
          }
          if (IsMissing(scores[i].value)) continue;
          const bool known = seen[task.entries[i].strat];
          acc[s].AddPrediction(p, scores[i], task.entries[i].value, known);
          in_fold.AddPrediction(p, scores[i], task.entries[i].value, known);
        }
      }
      if (group != nullptr) {
        const double sd = std::exp((acc[s].log_sd - log_sd_before) / test.size());
        report.group_slowdown[fold_group[f]][selectors[s].name] = sd;
        SelectorMetrics m = finish(in_fold);
        // The same figure as group_slowdown_geomean, to the last digit.
        if (!IsMissing(m.slowdown_geomean)) m.slowdown_geomean = sd;
        if (!chosen.empty()) m.ranked_by[chosen] = 1;
        group->selectors.emplace_back(selectors[s].name, std::move(m));
      }
      if (o.on_step) {
        o.on_step(static_cast<int>(f * selectors.size() + s + 1), static_cast<int>(num_folds * selectors.size()));
      }
    }
  }
  // Random (expected over a uniform choice) and oracle, over all tasks and per held-out group.
  Accumulator random, oracle;
  std::map<std::string, std::pair<Accumulator, Accumulator>> group_random_oracle;
  double vbs_cost = 0;
  for (const Problem::Task& t : p.tasks) {
    AddRandomAndOracle(p, t, &random, &oracle);
    if (o.leave_one_group_out) {
      auto& [r, b] = group_random_oracle[t.group];
      AddRandomAndOracle(p, t, &r, &b);
    }
    vbs_cost += BestValue(p, t);
  }
  for (auto& [name, g] : report.groups) {
    const auto& [r, b] = group_random_oracle[name];
    g.selectors.emplace_back("random", finish(r));
    g.selectors.emplace_back("oracle", finish(b));
  }
  report.tasks = n;
  report.measure = p.measure;
  report.maximize = p.maximize;
  report.skipped_tasks = p.skipped_tasks;
  report.skipped_rows = p.skipped_rows;
  report.candidates = strategies.size();
  report.mean_candidates = entries / n;
  report.folds = num_folds;

  std::vector<std::pair<std::string, SelectorMetrics>> out;
  for (size_t s = 0; s < selectors.size(); ++s) {
    out.emplace_back(selectors[s].name, finish(acc[s]));
    out.back().second.ranked_by = ranked_by[s];
  }
  out.emplace_back("random", finish(random));
  out.emplace_back("oracle", finish(oracle));
  // Gap metrics relative to SBS (if present) and the oracle.
  const SelectorMetrics* sbs = nullptr;
  for (const auto& [name, m] : out) {
    if (name == "sbs") sbs = &m;
  }
  const double vbs = vbs_cost / n;
  for (auto& [name, m] : out) {
    if (sbs == nullptr) break;
    if (p.aslib || p.quality) {
      // On the scored mean (PAR10 or the quality measure), in the measure's direction: SBS is worse than the VBS.
      const double denom = p.aslib ? sbs->par10 - vbs : sbs->mean_measure - vbs;
      const double mean = p.aslib ? m.par10 : m.mean_measure;
      m.remaining_gap = (p.maximize ? denom < 0 : denom > 0) ? (mean - vbs) / denom : kMissing;
      m.gap_closed = IsMissing(m.remaining_gap) ? kMissing : 1.0 - m.remaining_gap;
    } else {
      const double denom = std::log(sbs->slowdown_geomean);
      m.gap_closed = denom > 0 ? 1.0 - std::log(m.slowdown_geomean) / denom : kMissing;
    }
  }
  report.selectors = std::move(out);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

namespace {

nlohmann::json SelectorJson(const SelectorMetrics& m) {
  nlohmann::json s;
  s["top1"] = m.top1;
  s["top3"] = m.top3;
  s["slowdown_geomean"] = IsMissing(m.slowdown_geomean) ? nlohmann::json(nullptr) : nlohmann::json(m.slowdown_geomean);
  s["gap_closed"] = IsMissing(m.gap_closed) ? nlohmann::json(nullptr) : nlohmann::json(m.gap_closed);
  if (!IsMissing(m.par10)) s["par10"] = m.par10;
  if (!IsMissing(m.mean_measure)) s["mean_measure"] = m.mean_measure;
  if (!IsMissing(m.par10) || !IsMissing(m.mean_measure)) {
    s["remaining_gap"] = IsMissing(m.remaining_gap) ? nlohmann::json(nullptr) : nlohmann::json(m.remaining_gap);
  }
  if (!IsMissing(m.mape)) {
    s["mape"] = m.mape;
    s["median_ape"] = m.median_ape;
    // Null rather than absent when every predicted row had an unseen strategy: the selector does predict.
    s["mape_seen_strategies"] =
        IsMissing(m.mape_seen_strategies) ? nlohmann::json(nullptr) : nlohmann::json(m.mape_seen_strategies);
  }
  if (!IsMissing(m.mape_unseen_strategies)) s["mape_unseen_strategies"] = m.mape_unseen_strategies;
  if (!IsMissing(m.coverage80)) s["coverage80"] = m.coverage80;
  if (!IsMissing(m.coverage80_unseen_strategies)) s["coverage80_unseen_strategies"] = m.coverage80_unseen_strategies;
  if (!m.ranked_by.empty()) s["ranked_by"] = m.ranked_by;
  return s;
}

// A selector's figures on one held-out group: the subset of SelectorJson that means something per group.
nlohmann::json GroupSelectorJson(const SelectorMetrics& m) {
  static const std::set<std::string> kKeys = {"slowdown_geomean",
                                              "top1",
                                              "mape",
                                              "mape_seen_strategies",
                                              "mape_unseen_strategies",
                                              "median_ape",
                                              "coverage80",
                                              "coverage80_unseen_strategies",
                                              "ranked_by"};
  nlohmann::json all = SelectorJson(m), out = nlohmann::json::object();
  for (const auto& [key, value] : all.items()) {
    if (kKeys.count(key) > 0) out[key] = value;
  }
  return out;
}

nlohmann::json GroupHeaderJson(const GroupMetrics& g) {
  nlohmann::json j;
  j["tasks"] = g.tasks;
  j["rows"] = g.rows;
  j["rows_unseen_strategies"] = g.rows_unseen_strategies;
  return j;
}

nlohmann::json ReportHeaderJson(const EvalReport& r) {
  nlohmann::json j;
  j["tasks"] = r.tasks;
  j["skipped_tasks"] = r.skipped_tasks;
  j["skipped_rows"] = r.skipped_rows;  // rows without a usable target
  j["candidates"] = r.candidates;
  j["mean_candidates_per_task"] = r.mean_candidates;
  j["protocol"] = r.protocol;
  j["folds"] = r.folds;
  j["seconds"] = r.seconds;
  if (!r.measure.empty()) {
    j["performance_measure"] = r.measure;
    j["maximize"] = r.maximize;
  }
  return j;
}

// Mean and sample standard deviation of `values` (sd 0 for one value).
std::pair<double, double> MeanSd(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  const double mean = sum / values.size();
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return {mean, values.size() > 1 ? std::sqrt(ss / (values.size() - 1)) : 0.0};
}

// One selector's per-seed objects folded into one: numeric keys of the first seed as mean and `<key>_sd`
// (both null when any seed lacks the number), ranked_by summed.
nlohmann::json MeanOverSeeds(const std::vector<nlohmann::json>& per_seed) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, first] : per_seed.front().items()) {
    if (key == "seed") continue;
    if (key == "ranked_by") {
      std::map<std::string, int> total;
      for (const auto& p : per_seed) {
        if (!p.contains(key)) continue;
        for (const auto& [learner, n] : p[key].items()) total[learner] += n.get<int>();
      }
      out[key] = total;
      continue;
    }
    std::vector<double> values;
    bool all = true;
    for (const auto& p : per_seed) {
      if (p.contains(key) && p[key].is_number()) {
        values.push_back(p[key].get<double>());
      } else {
        all = false;
      }
    }
    if (!all) {
      out[key] = nullptr;
      out[key + "_sd"] = nullptr;
      continue;
    }
    const auto [mean, sd] = MeanSd(values);
    out[key] = mean;
    out[key + "_sd"] = sd;
  }
  return out;
}

}  // namespace

std::string ReportJson(const EvalReport& r) {
  nlohmann::json j = ReportHeaderJson(r);
  nlohmann::json sel = nlohmann::json::object();
  for (const auto& [name, m] : r.selectors) sel[name] = SelectorJson(m);
  j["selectors"] = sel;
  if (!r.group_slowdown.empty()) j["group_slowdown_geomean"] = r.group_slowdown;
  if (!r.groups.empty()) {
    nlohmann::json groups = nlohmann::json::object();
    for (const auto& [name, g] : r.groups) {
      nlohmann::json gj = GroupHeaderJson(g);
      for (const auto& [selector, m] : g.selectors) gj[selector] = GroupSelectorJson(m);
      groups[name] = gj;
    }
    j["groups"] = groups;
  }
  return j.dump();
}

std::string SeedsReportJson(const std::vector<uint64_t>& seeds, const std::vector<EvalReport>& reports) {
  if (reports.empty()) return "{}";
  nlohmann::json j = ReportHeaderJson(reports.front());
  double seconds = 0;
  for (const EvalReport& r : reports) seconds += r.seconds;
  j["seconds"] = seconds;
  j["seed_values"] = seeds;
  nlohmann::json sel = nlohmann::json::object();
  for (size_t s = 0; s < reports.front().selectors.size(); ++s) {
    const std::string& name = reports.front().selectors[s].first;
    std::vector<nlohmann::json> per_seed;
    for (size_t i = 0; i < reports.size(); ++i) {
      if (s >= reports[i].selectors.size() || reports[i].selectors[s].first != name) continue;
      per_seed.push_back(SelectorJson(reports[i].selectors[s].second));
      per_seed.back()["seed"] = seeds[i];
    }
    nlohmann::json out = MeanOverSeeds(per_seed);
    out["seeds"] = per_seed;
    sel[name] = out;
  }
  j["selectors"] = sel;
  std::map<std::string, std::map<std::string, double>> groups;
  for (const EvalReport& r : reports) {
    for (const auto& [group, by] : r.group_slowdown) {
      for (const auto& [name, sd] : by) groups[group][name] += sd / reports.size();
    }
  }
  if (!groups.empty()) j["group_slowdown_geomean"] = groups;
  // Groups are fixed by the data, so every seed holds the same groups and counts; per group and selector the
  // figures are folded over seeds like the flat keys.
  if (!reports.front().groups.empty()) {
    nlohmann::json by_group = nlohmann::json::object();
    for (const auto& [name, g] : reports.front().groups) {
      nlohmann::json gj = GroupHeaderJson(g);
      for (const auto& [selector, unused] : g.selectors) {
        std::vector<nlohmann::json> per_seed;
        for (const EvalReport& r : reports) {
          const auto it = r.groups.find(name);
          if (it == r.groups.end()) continue;
          for (const auto& [other, m] : it->second.selectors) {
            if (other == selector) per_seed.push_back(GroupSelectorJson(m));
          }
        }
        gj[selector] = MeanOverSeeds(per_seed);
      }
      by_group[name] = gj;
    }
    j["groups"] = by_group;
  }
  return j.dump();
}

std::string SeedsReportTable(const std::vector<uint64_t>& seeds, const std::vector<EvalReport>& reports) {
  if (reports.empty()) return "";
  const EvalReport& f = reports.front();
  std::string out = absl::StrFormat(
      "tasks %d (skipped %d), candidates %d (%.2f per task), protocol: %s, seeds %d..%d: mean ± sd\n", f.tasks,
      f.skipped_tasks, f.candidates, f.mean_candidates, f.protocol, seeds.front(), seeds.back());
  const bool gap = !f.selectors.empty() && !IsMissing(f.selectors.front().second.remaining_gap);
  absl::StrAppendFormat(&out, "%-10s %16s %20s %18s\n", "selector", "top1", "slowdown", gap ? "rem_gap" : "gap_closed");
  auto cell = [&](size_t s, auto metric, int precision) {
    std::vector<double> v;
    for (const EvalReport& r : reports) {
      const double x = metric(r.selectors[s].second);
      if (IsMissing(x)) return std::string("-");
      v.push_back(x);
    }
    const auto [mean, sd] = MeanSd(v);
    return absl::StrFormat("%.*f ± %.*f", precision, mean, precision, sd);
  };
  for (size_t s = 0; s < f.selectors.size(); ++s) {
    absl::StrAppendFormat(&out, "%-10s %16s %20s %18s\n", f.selectors[s].first,
                          cell(
                              s, [](const SelectorMetrics& m) { return m.top1; }, 3),
                          cell(
                              s, [](const SelectorMetrics& m) { return m.slowdown_geomean; }, 4),
                          gap ? cell(
                                    s, [](const SelectorMetrics& m) { return m.remaining_gap; }, 3)
                              : cell(
                                    s, [](const SelectorMetrics& m) { return m.gap_closed; }, 3));
  }
  return out;
}

std::string ReportTable(const EvalReport& r) {
  std::string out = absl::StrFormat("tasks %d (skipped %d), candidates %d (%.2f per task), protocol: %s, %.1f s\n",
                                    r.tasks, r.skipped_tasks, r.candidates, r.mean_candidates, r.protocol, r.seconds);
  const bool aslib = !r.selectors.empty() && !IsMissing(r.selectors.front().second.par10);
  const bool quality = !r.selectors.empty() && !IsMissing(r.selectors.front().second.mean_measure);
  if (quality) {
    absl::StrAppendFormat(&out, "scored on %s (%s), no cutoff, no feature cost\n", r.measure,
                          r.maximize ? "maximised" : "minimised");
  }
  absl::StrAppendFormat(&out, "%-10s %7s %7s %10s %10s", "selector", "top1", "top3", "slowdown", "gap_closed");
  if (aslib) absl::StrAppendFormat(&out, " %12s %10s", "par10", "rem_gap");
  if (quality) absl::StrAppendFormat(&out, " %12s %10s", "mean", "rem_gap");
  // mape_seen only where it can differ from mape: some predicted row had a strategy its training folds lacked.
  const bool unseen = std::any_of(r.selectors.begin(), r.selectors.end(),
                                  [](const auto& s) { return !IsMissing(s.second.mape_unseen_strategies); });
  absl::StrAppendFormat(&out, " %8s", "mape");
  if (unseen) absl::StrAppendFormat(&out, " %9s", "mape_seen");
  absl::StrAppendFormat(&out, " %10s %10s\n", "median_ape", "coverage80");
  auto num = [](double v, int precision) {
    return IsMissing(v) ? std::string("-") : absl::StrFormat("%.*f", precision, v);
  };
  for (const auto& [name, m] : r.selectors) {
    absl::StrAppendFormat(&out, "%-10s %7.3f %7.3f %10s %10s", name, m.top1, m.top3, num(m.slowdown_geomean, 4),
                          num(m.gap_closed, 3));
    if (aslib) absl::StrAppendFormat(&out, " %12s %10s", num(m.par10, 1), num(m.remaining_gap, 3));
    if (quality) absl::StrAppendFormat(&out, " %12s %10s", num(m.mean_measure, 4), num(m.remaining_gap, 3));
    absl::StrAppendFormat(&out, " %8s", num(m.mape, 3));
    if (unseen) absl::StrAppendFormat(&out, " %9s", num(m.mape_seen_strategies, 3));
    absl::StrAppendFormat(&out, " %10s %10s\n", num(m.median_ape, 3), num(m.coverage80, 3));
  }
  for (const auto& [name, m] : r.selectors) {
    if (m.ranked_by.empty()) continue;
    absl::StrAppendFormat(&out, "%s ranked by (folds):", name);
    for (const auto& [learner, n] : m.ranked_by) absl::StrAppendFormat(&out, " %s %d", learner, n);
    out += "\n";
  }
  for (const auto& [group, by_selector] : r.group_slowdown) {
    absl::StrAppendFormat(&out, "  held out %-32s", group);
    for (const auto& [name, sd] : by_selector) absl::StrAppendFormat(&out, " %s %.4f", name, sd);
    out += "\n";
  }
  return out;
}

}  // namespace accelsel::eval
