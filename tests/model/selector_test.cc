// Selector ordering with a ranking head: model-layer candidates follow Prediction::rank_score even where the
// regressed values disagree, observed candidates keep their value-based positions, and feasibility (SLO) still
// comes from values. Also checks that a trained MetaModel fills rank scores that order its own telemetry well.
#include "model/selector.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/meta_model.h"
#include "model/observed_stats.h"

namespace accelsel::model {
namespace {

// A predictor with fixed answers per strategy id: lets a test make the regression and the ranking disagree.
class FixedPredictor : public Predictor {
 public:
  explicit FixedPredictor(std::map<std::string, Prediction> by_id) : by_id_(std::move(by_id)) {}
  uint64_t version() const override { return 1; }
  void Predict(const TaskContext&, const std::vector<const Strategy*>& strategies, Objective,
               std::vector<Prediction>* out) const override {
    out->clear();
    for (const Strategy* s : strategies) out->push_back(by_id_.at(s->id));
  }

 private:
  std::map<std::string, Prediction> by_id_;
};

Prediction Pred(double expected_ms, double rank_score) {
  Prediction p;
  p.expected = expected_ms;
  p.low = expected_ms * 0.8;
  p.high = expected_ms * 1.25;
  p.latency_ms = expected_ms;
  p.rank_score = rank_score;
  return p;
}

// A prediction of `ms` whose interval spans a factor `spread` either way, with the given relative spread.
Prediction Spread(double ms, double spread, double relative_sd = kMissing) {
  Prediction p;
  p.expected = p.latency_ms = ms;
  p.low = ms / spread;
  p.high = ms * spread;
  p.relative_log_sd = relative_sd;
  return p;
}

TaskContext Ctx() {
  TaskContext c;
  c.model = {"acme/model-7b", "acme", 7.0, 32, 4096, 32, 8, 0, 0, "bf16"};
  c.hardware = {"Acme X1", 1, 80, 2000, 400, "pcie", 2.0};
  c.workload = {256, 128, 8, 0, 0, "synthetic"};
  return c;
}

std::vector<std::string> Order(const std::vector<Recommendation>& recs) {
  std::vector<std::string> ids;
  for (const auto& r : recs) ids.push_back(r.strategy->id);
  return ids;
}

const Strategy kA{"a", {{"engine", "a"}}, ""};
const Strategy kB{"b", {{"engine", "b"}}, ""};
const Strategy kC{"c", {{"engine", "c"}}, ""};
const Strategy kD{"d", {{"engine", "d"}}, ""};

TEST(SelectorRankTest, RankScoreOrdersModelLayerWhereRegressionDisagrees) {
  const TaskContext ctx = Ctx();
  // Regression says a < b < c; the ranking head says c, then a, then b.
  FixedPredictor p({{"a", Pred(100, 2.0)}, {"b", Pred(110, 3.0)}, {"c", Pred(120, 1.0)}});
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &kB, &kC};
  ObservedStats none;
  std::mt19937_64 rng(1);
  Selector selector(SelectorOptions{});
  const auto recs = selector.Select(q, none, &p, rng);
  EXPECT_EQ(Order(recs), (std::vector<std::string>{"c", "a", "b"}));
  // Values still come from the regression.
  EXPECT_DOUBLE_EQ(recs[0].expected_value, 120);
  EXPECT_EQ(recs[0].rank, 1u);
  EXPECT_EQ(recs[0].layer, EvidenceLayer::kModel);

  // Without rank scores the regression orders.
  FixedPredictor plain({{"a", Pred(100, kMissing)}, {"b", Pred(110, kMissing)}, {"c", Pred(120, kMissing)}});
  EXPECT_EQ(Order(selector.Select(q, none, &plain, rng)), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(SelectorRankTest, FeasibilityComesFromValuesNotRank) {
  const TaskContext ctx = Ctx();
  // c is ranked best but its predicted value breaks the SLO: it goes after every feasible candidate.
  FixedPredictor p({{"a", Pred(100, 2.0)}, {"b", Pred(110, 3.0)}, {"c", Pred(500, 1.0)}});
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &kB, &kC};
  q.constraints.max_latency_ms = 200;
  ObservedStats none;
  std::mt19937_64 rng(1);
  const auto recs = Selector(SelectorOptions{}).Select(q, none, &p, rng);
  EXPECT_EQ(Order(recs), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(recs[2].meets_constraints);
}

TEST(SelectorRankTest, ObservedCandidateKeepsItsValuePosition) {
  const TaskContext ctx = Ctx();
  ObservedStats stats;
  for (int i = 0; i < 5; ++i) {  // b observed at about 105 ms in this very context
    RunRecord r;
    r.run_id = "obs" + std::to_string(i);
    r.node_id = "n1";
    r.context = ctx;
    r.strategy_id = "b";
    r.metrics.e2e_latency_ms = 105;
    stats.Add(r);
  }
  // a, c and d ran on this accelerator elsewhere (else they would be "unverified_on_accelerator" here).
  for (const Strategy* s : {&kA, &kC, &kD}) {
    RunRecord r;
    r.run_id = "other-" + s->id;
    r.node_id = "n1";
    r.context = ctx;
    r.context.workload.batch_size = 64;
    r.strategy_id = s->id;
    r.metrics.e2e_latency_ms = 300;
    stats.Add(r);
  }
  // Values: a 100, b ~105 (observed), c 110, d 120. Ranking of the model layer: d, c, a.
  FixedPredictor p({{"a", Pred(100, 3.0)}, {"b", Pred(105, 0.5)}, {"c", Pred(110, 2.0)}, {"d", Pred(120, 1.0)}});
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &kB, &kC, &kD};
  std::mt19937_64 rng(1);
  const auto recs = Selector(SelectorOptions{}).Select(q, stats, &p, rng);
  // By value the slots are [model, observed b, model, model]; the model slots are filled in rank order d, c, a.
  EXPECT_EQ(Order(recs), (std::vector<std::string>{"d", "b", "c", "a"}));
  EXPECT_EQ(recs[1].layer, EvidenceLayer::kObserved);
}

// The MetaModel's own ranking head: present, persisted, and ordering the synthetic telemetry (A fast at small
// batch, B at large batch) correctly through the Selector.
TEST(SelectorRankTest, MetaModelRankHeadOrdersCandidatesAndRoundTrips) {
  std::mt19937_64 gen(3);
  std::uniform_real_distribution<double> log_batch(0, std::log(128.0));
  std::normal_distribution<double> noise(0, 0.1);
  std::vector<RunRecord> runs;
  for (int i = 0; i < 300; ++i) {
    TaskContext c = Ctx();
    c.workload.batch_size = static_cast<uint32_t>(std::lround(std::exp(log_batch(gen))));
    for (int s = 0; s < 2; ++s) {
      RunRecord r;
      r.run_id = "r" + std::to_string(i) + "-" + std::to_string(s);
      r.context = c;
      r.strategy_id = s == 0 ? "a" : "b";
      const double b = c.workload.batch_size;
      r.metrics.e2e_latency_ms = (s == 0 ? 10 + b : 40 + 0.25 * b) * std::exp(noise(gen));
      runs.push_back(std::move(r));
    }
  }
  TrainOptions o;
  o.catalog = {kA, kB};
  auto m = MetaModel::Train(runs, o);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE((*m)->HasRankHead(Objective::kE2eLatency));
  auto blob = (*m)->Serialize();
  ASSERT_TRUE(blob.ok()) << blob.status();
  auto copy = MetaModel::Deserialize(*blob, 2);
  ASSERT_TRUE(copy.ok()) << copy.status();
  ASSERT_TRUE((*copy)->HasRankHead(Objective::kE2eLatency));
  ObservedStats none;
  std::mt19937_64 rng(1);
  Selector selector(SelectorOptions{});
  for (uint32_t batch : {2u, 4u, 96u, 128u}) {
    TaskContext c = Ctx();
    c.workload.batch_size = batch;
    std::vector<Prediction> p1, p2;
    (*m)->Predict(c, {&kA, &kB}, Objective::kE2eLatency, &p1);
    (*copy)->Predict(c, {&kA, &kB}, Objective::kE2eLatency, &p2);
    ASSERT_FALSE(std::isnan(p1[0].rank_score));
    EXPECT_DOUBLE_EQ(p1[0].rank_score, p2[0].rank_score);
    EXPECT_DOUBLE_EQ(p1[1].rank_score, p2[1].rank_score);
    SelectQuery q;
    q.context = &c;
    q.candidates = {&kA, &kB};
    const auto recs = selector.Select(q, none, copy->get(), rng);
    EXPECT_EQ(recs[0].strategy->id, batch < 40 ? "a" : "b") << "batch " << batch;
  }
  // Without the ranking head nothing fills rank scores.
  o.rank_heads = false;
  auto plain = MetaModel::Train(runs, o);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE((*plain)->HasRankHead(Objective::kE2eLatency));
  std::vector<Prediction> p;
  (*plain)->Predict(Ctx(), {&kA, &kB}, Objective::kE2eLatency, &p);
  EXPECT_TRUE(std::isnan(p[0].rank_score));
}

// --- Constraints --------------------------------------------------------------------------------------------------

bool Meets(const std::vector<Recommendation>& recs, const std::string& id,
           std::vector<std::string>* violated = nullptr) {
  for (const auto& r : recs) {
    if (r.strategy->id != id) continue;
    if (violated != nullptr) *violated = r.violated;
    return r.meets_constraints;
  }
  ADD_FAILURE() << id << " not returned";
  return false;
}

// The budget bounds the expected cost (latency x the accelerator's price), whatever the objective: at 2 $/h, 100 ms
// costs 5.6e-5 $ and 200 ms 1.1e-4 $.
TEST(SelectorConstraintTest, BudgetBoundsTheExpectedCostUnderALatencyObjective) {
  const TaskContext ctx = Ctx();
  ASSERT_EQ(ctx.hardware.price_per_hour, 2.0);
  ObservedStats none;
  FixedPredictor model({{"a", Pred(100, kMissing)}, {"b", Pred(200, kMissing)}});
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &kB};
  q.constraints.max_cost = 8e-5;
  std::mt19937_64 rng(1);
  const auto recs = Selector(SelectorOptions{}).Select(q, none, &model, rng);
  EXPECT_NEAR(recs[0].expected_cost, 100 / 3.6e6 * 2.0, 1e-12);
  EXPECT_TRUE(Meets(recs, "a"));
  std::vector<std::string> violated;
  EXPECT_FALSE(Meets(recs, "b", &violated));
  EXPECT_EQ(violated, std::vector<std::string>{"max_cost"});
}

// Under a TTFT objective the latency SLO bounds the time to first token, not the end-to-end latency of the whole
// generation.
TEST(SelectorConstraintTest, LatencySloBoundsTheObjectivesOwnLatency) {
  const TaskContext ctx = Ctx();
  ObservedStats none;
  auto ttft = [](double ttft_ms, double e2e_ms) {
    Prediction p = Pred(ttft_ms, kMissing);
    p.latency_ms = e2e_ms;
    return p;
  };
  FixedPredictor model({{"a", ttft(50, 3000)}, {"b", ttft(150, 2000)}});
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &kB};
  q.objective = Objective::kTtft;
  q.constraints.max_latency_ms = 100;
  std::mt19937_64 rng(1);
  const auto recs = Selector(SelectorOptions{}).Select(q, none, &model, rng);
  EXPECT_TRUE(Meets(recs, "a"));
  std::vector<std::string> violated;
  EXPECT_FALSE(Meets(recs, "b", &violated));
  EXPECT_EQ(violated, std::vector<std::string>{"max_latency_ms"});
  EXPECT_EQ(recs[0].strategy->id, "a");
}

// A lossy strategy (weights below 16 bits, a quantised KV cache) is an ordinary candidate until the caller excludes
// lossy ones: then it violates "exclude_lossy" and ranks after every output-preserving candidate, however fast.
TEST(SelectorConstraintTest, ExcludeLossyMakesLossyCandidatesInfeasible) {
  const TaskContext ctx = Ctx();
  ObservedStats none;
  const Strategy q4{"q4", {{"engine", "a"}, {"weights", "q4_0"}}, "", /*lossy=*/true};
  FixedPredictor model({{"a", Pred(100, kMissing)}, {"q4", Pred(50, kMissing)}});
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &q4};
  std::mt19937_64 rng(1);
  const Selector selector(SelectorOptions{});
  const auto allowed = selector.Select(q, none, &model, rng);
  EXPECT_EQ(Order(allowed), (std::vector<std::string>{"q4", "a"}));
  EXPECT_TRUE(Meets(allowed, "q4"));

  q.constraints.exclude_lossy = true;
  const auto excluded = selector.Select(q, none, &model, rng);
  EXPECT_EQ(Order(excluded), (std::vector<std::string>{"a", "q4"}));
  EXPECT_TRUE(Meets(excluded, "a"));
  std::vector<std::string> violated;
  EXPECT_FALSE(Meets(excluded, "q4", &violated));
  EXPECT_EQ(violated, std::vector<std::string>{"exclude_lossy"});
  EXPECT_DOUBLE_EQ(excluded[1].expected_value, 50);  // still estimated, only infeasible
}

// --- Exploration policy -----------------------------------------------------------------------------------------

void AddRuns(ObservedStats& stats, const TaskContext& ctx, const std::string& strategy, double ms, int n) {
  for (int i = 0; i < n; ++i) {
    RunRecord r;
    r.run_id = strategy + std::to_string(i);
    r.node_id = "n" + std::to_string(i % 7);
    r.context = ctx;
    r.strategy_id = strategy;
    r.metrics.e2e_latency_ms = ms * (1 + 0.02 * ((i % 5) - 2));  // a few percent of run-to-run spread
    stats.Add(r);
  }
}

SelectQuery ExploringQuery(const TaskContext& ctx, std::vector<const Strategy*> candidates) {
  SelectQuery q;
  q.context = &ctx;
  q.candidates = std::move(candidates);
  q.allow_exploration = true;
  return q;
}

double ProbabilityOf(const std::vector<Recommendation>& recs, const std::string& id) {
  for (const auto& r : recs) {
    if (r.strategy->id == id) return r.selection_probability;
  }
  return -1;
}

// How often each strategy is placed first over `draws` calls, and the probability the selector returned for it
// (the same on every call, since nothing changes between calls).
struct Draws {
  std::map<std::string, int> first;
  std::map<std::string, double> returned;
};

Draws Sample(const Selector& selector, const SelectQuery& q, const ObservedStats& stats, const Predictor* p,
             int draws) {
  std::mt19937_64 rng(7);
  Draws out;
  for (int i = 0; i < draws; ++i) {
    const auto recs = selector.Select(q, stats, p, rng);
    double total = 0;
    for (const auto& r : recs) {
      total += r.selection_probability;
      auto [it, inserted] = out.returned.try_emplace(r.strategy->id, r.selection_probability);
      EXPECT_DOUBLE_EQ(it->second, r.selection_probability) << r.strategy->id;
    }
    EXPECT_NEAR(total, 1.0, 1e-9);
    EXPECT_EQ(recs[0].explored, recs[0].strategy->id != selector
                                                            .Select(
                                                                [&] {
                                                                  SelectQuery exploit = q;
                                                                  exploit.allow_exploration = false;
                                                                  return exploit;
                                                                }(),
                                                                stats, p, rng)[0]
                                                            .strategy->id);
    ++out.first[recs[0].strategy->id];
  }
  return out;
}

// The returned first-place probability is the probability with which the candidate is placed first: the decision
// log's off-policy estimates divide by it.
void ExpectFrequenciesMatchProbabilities(const Draws& d, int draws) {
  for (const auto& [id, p] : d.returned) {
    const double sd = std::sqrt(draws * p * (1 - p));
    const auto it = d.first.find(id);
    const int seen = it == d.first.end() ? 0 : it->second;
    EXPECT_NEAR(seen, draws * p, 4 * sd + 1) << id << " placed first " << seen << " times, returned p=" << p;
  }
}

TEST(SelectorExplorationTest, NothingKnownSpreadsFirstPlacesEvenly) {
  const TaskContext ctx = Ctx();
  ObservedStats none;
  const SelectQuery q = ExploringQuery(ctx, {&kA, &kB, &kC, &kD});
  const int draws = 4000;
  const Draws d = Sample(Selector(SelectorOptions{.exploration_rate = 0.05}), q, none, nullptr, draws);
  for (const Strategy* s : {&kA, &kB, &kC, &kD}) EXPECT_NEAR(d.returned.at(s->id), 0.25, 0.01) << s->id;
  ExpectFrequenciesMatchProbabilities(d, draws);
}

// The lock-in seen in closed-loop simulation: the first strategy run on an accelerator made every other one
// "unverified" there, and unverified candidates were never explored. They must be, or they stay unverified.
TEST(SelectorExplorationTest, UnverifiedCandidatesAreExploredAndUnknownOnesOptimistically) {
  const TaskContext ctx = Ctx();
  ObservedStats stats;
  AddRuns(stats, ctx, "a", 100, 3);  // only a has ever run on this accelerator
  const SelectQuery q = ExploringQuery(ctx, {&kA, &kB, &kC});
  const Selector selector(SelectorOptions{.exploration_rate = 0.05});
  std::mt19937_64 rng(1);
  const auto recs = selector.Select(q, stats, nullptr, rng);
  ASSERT_EQ(recs.size(), 3u);
  // An unknown candidate is assumed as good as the best known one, with a wide spread: a real chance of first place.
  EXPECT_GT(ProbabilityOf(recs, "b"), 0.2);
  EXPECT_GT(ProbabilityOf(recs, "c"), 0.2);
  const int draws = 3000;
  const Draws d = Sample(selector, q, stats, nullptr, draws);
  EXPECT_GT(d.first.count("b") ? d.first.at("b") : 0, 0);
  ExpectFrequenciesMatchProbabilities(d, draws);
}

// Once the evidence is clear the loser is no longer a plausible winner and is never placed first: a perfect ranker
// does not pay a uniform exploration tax.
TEST(SelectorExplorationTest, ClearLoserIsNeverExploredAndNearTieKeepsTheFloor) {
  const TaskContext ctx = Ctx();
  ObservedStats stats;
  AddRuns(stats, ctx, "a", 100, 40);
  AddRuns(stats, ctx, "b", 200, 40);
  AddRuns(stats, ctx, "c", 101, 40);
  const SelectQuery q = ExploringQuery(ctx, {&kA, &kB, &kC});
  const double floor = 0.05;
  const Selector selector(SelectorOptions{.exploration_rate = floor});
  std::mt19937_64 rng(1);
  const auto recs = selector.Select(q, stats, nullptr, rng);
  EXPECT_EQ(ProbabilityOf(recs, "b"), 0.0);
  // a and c are within each other's uncertainty: both keep at least half the floor, a more than c.
  EXPECT_GE(ProbabilityOf(recs, "c"), floor / 2);
  EXPECT_GT(ProbabilityOf(recs, "a"), ProbabilityOf(recs, "c"));
  const int draws = 3000;
  const Draws d = Sample(selector, q, stats, nullptr, draws);
  EXPECT_EQ(d.first.count("b"), 0u);
  ExpectFrequenciesMatchProbabilities(d, draws);
  // Without the caller's consent the first place is the ranking's, with probability 1.
  SelectQuery exploit = q;
  exploit.allow_exploration = false;
  const auto fixed = selector.Select(exploit, stats, nullptr, rng);
  EXPECT_EQ(fixed[0].strategy->id, "a");
  EXPECT_EQ(fixed[0].selection_probability, 1.0);
  EXPECT_FALSE(fixed[0].explored);
}

// A model that is unsure (wide interval) about a candidate it predicts slightly worse leaves it a real chance; the
// same prediction with a narrow interval does not.
TEST(SelectorExplorationTest, ExplorationFollowsTheModelsUncertainty) {
  const TaskContext ctx = Ctx();
  TaskContext other = ctx;
  other.workload.batch_size = 64;
  ObservedStats verified;  // both ran on the accelerator, elsewhere: the model layer answers here
  AddRuns(verified, other, "a", 100, 1);
  AddRuns(verified, other, "b", 100, 1);
  auto pred = [](double ms, double spread) { return Spread(ms, spread); };
  const SelectQuery q = ExploringQuery(ctx, {&kA, &kB});
  const Selector selector(SelectorOptions{.exploration_rate = 0.0001});
  std::mt19937_64 rng(1);
  FixedPredictor unsure({{"a", pred(100, 1.1)}, {"b", pred(130, 3.0)}});
  FixedPredictor sure({{"a", pred(100, 1.1)}, {"b", pred(130, 1.1)}});
  const double p_unsure = ProbabilityOf(selector.Select(q, verified, &unsure, rng), "b");
  const double p_sure = ProbabilityOf(selector.Select(q, verified, &sure, rng), "b");
  EXPECT_GT(p_unsure, 0.1);
  EXPECT_LT(p_sure, 0.01);
}

// A wide interval that is mostly the error every candidate of the context shares (the model knows how strategies
// compare, not how fast this context is) does not make a worse-predicted candidate a likely winner: exploration
// follows the relative spread.
TEST(SelectorExplorationTest, ExplorationFollowsTheRelativeSpreadNotTheSharedError) {
  const TaskContext ctx = Ctx();
  TaskContext other = ctx;
  other.workload.batch_size = 64;
  ObservedStats verified;
  AddRuns(verified, other, "a", 100, 1);
  AddRuns(verified, other, "b", 100, 1);
  auto pred = [](double ms, double relative_sd) { return Spread(ms, 3.0, relative_sd); };
  const SelectQuery q = ExploringQuery(ctx, {&kA, &kB});
  const Selector selector(SelectorOptions{.exploration_rate = 0.0001});
  std::mt19937_64 rng(1);
  FixedPredictor relative({{"a", pred(100, 0.05)}, {"b", pred(130, 0.05)}});
  FixedPredictor unknown({{"a", pred(100, kMissing)}, {"b", pred(130, kMissing)}});
  EXPECT_LT(ProbabilityOf(selector.Select(q, verified, &relative, rng), "b"), 0.01);
  EXPECT_GT(ProbabilityOf(selector.Select(q, verified, &unknown, rng), "b"), 0.1);
}

// Many near-equal candidates and a context nobody has run: trying each plausible one would cost more than a
// slightly better one can repay, so only the likeliest winners are explored, more of them as the context recurs.
TEST(SelectorExplorationTest, FewVisitsExploreOnlyTheLikeliestWinners) {
  const TaskContext ctx = Ctx();
  TaskContext other = ctx;
  other.workload.batch_size = 64;
  std::vector<Strategy> strategies;
  for (int i = 0; i < 20; ++i) strategies.push_back(Strategy{"s" + std::to_string(100 + i), {}, ""});
  ObservedStats stats, visited;
  std::map<std::string, Prediction> by_id;
  for (int i = 0; i < 20; ++i) {
    const std::string& id = strategies[i].id;
    AddRuns(stats, other, id, 100, 1);  // every candidate has run on this accelerator, elsewhere
    AddRuns(visited, other, id, 100, 1);
    by_id[id] = Spread(100 * (1 + 0.01 * i), 2.0, 0.2);
  }
  FixedPredictor model(by_id);
  std::vector<const Strategy*> candidates;
  for (const Strategy& st : strategies) candidates.push_back(&st);
  const SelectQuery q = ExploringQuery(ctx, candidates);
  const Selector selector(SelectorOptions{.exploration_rate = 0.05});
  auto explored = [&](const ObservedStats& st) {
    std::mt19937_64 rng(1);
    const auto recs = selector.Select(q, st, &model, rng);
    std::vector<std::string> ids;
    for (const auto& r : recs) {
      if (r.selection_probability > 0) ids.push_back(r.strategy->id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  // New here: the two best-looking.
  EXPECT_EQ(explored(stats), (std::vector<std::string>{"s100", "s101"}));
  // After 50 runs here (all of the best-looking one): eleven, the run one among them.
  AddRuns(visited, ctx, "s100", 100, 50);
  const std::vector<std::string> later = explored(visited);
  EXPECT_EQ(later.size(), 11u);
  EXPECT_NE(std::find(later.begin(), later.end(), "s100"), later.end());
  const int draws = 2000;
  const Draws d = Sample(selector, q, visited, &model, draws);
  ExpectFrequenciesMatchProbabilities(d, draws);
}

// The model predicts this context twice as fast as it is. Once one candidate has run here, the candidates that have
// not are moved by the same factor, so a run candidate is compared with unrun ones on one footing and the model's
// optimism about the unrun ones does not outrank what was measured.
TEST(SelectorEvidenceTest, UnrunCandidatesMoveByTheErrorTheContextShares) {
  const TaskContext ctx = Ctx();
  TaskContext other = ctx;
  other.workload.batch_size = 64;
  ObservedStats stats;
  AddRuns(stats, ctx, "a", 200, 40);   // predicted 100
  AddRuns(stats, other, "b", 100, 1);  // b and c have run on this accelerator, elsewhere
  AddRuns(stats, other, "c", 100, 1);
  auto pred = [](double ms) { return Spread(ms, 2.0, 0.05); };
  FixedPredictor model({{"a", pred(100)}, {"b", pred(120)}, {"c", pred(150)}});
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &kB, &kC};
  const Selector selector(SelectorOptions{});
  std::mt19937_64 rng(1);
  const auto recs = selector.Select(q, stats, &model, rng);
  ASSERT_EQ(Order(recs), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(recs[1].layer, EvidenceLayer::kModel);
  // log 2 shrunk a little towards 0 by the spread of contexts around the model.
  EXPECT_NEAR(recs[1].expected_value, 240, 12);
  EXPECT_NEAR(recs[1].interval_high / recs[1].interval_low, 4.0, 1e-6);
  EXPECT_NEAR(recs[2].expected_value / recs[1].expected_value, 1.25, 1e-6);
  EXPECT_NEAR(recs[0].expected_value, 200, 5);
  // Without the relative spread there is no telling the shared error from a strategy's own: nothing moves, and
  // the model's 120 for b outranks a's measured 200.
  std::map<std::string, Prediction> by_id = {{"a", pred(100)}, {"b", pred(120)}, {"c", pred(150)}};
  for (auto& [id, p] : by_id) p.relative_log_sd = kMissing;
  FixedPredictor plain(by_id);
  const auto unmoved = selector.Select(q, stats, &plain, rng);
  EXPECT_EQ(unmoved[0].strategy->id, "b");
  EXPECT_DOUBLE_EQ(unmoved[0].expected_value, 120);
}

// Once the context's shared error is known, the model's prediction moved by it errs only by the relative spread, so
// one noisy run of a candidate is blended with it rather than taken nearly as is.
TEST(SelectorEvidenceTest, OneRunIsBlendedWithTheMovedPrediction) {
  const TaskContext ctx = Ctx();
  ObservedStats stats;
  AddRuns(stats, ctx, "a", 200, 40);  // predicted 100: the context is about twice as slow as the model thinks
  AddRuns(stats, ctx, "b", 300, 1);   // predicted 100 too; one run, 1.5x a's
  auto pred = [](double ms, double relative_sd) { return Spread(ms, 2.0, relative_sd); };
  SelectQuery q;
  q.context = &ctx;
  q.candidates = {&kA, &kB};
  const Selector selector(SelectorOptions{});
  std::mt19937_64 rng(1);
  FixedPredictor relative({{"a", pred(100, 0.05)}, {"b", pred(100, 0.05)}});
  const auto recs = selector.Select(q, stats, &relative, rng);
  ASSERT_EQ(Order(recs), (std::vector<std::string>{"a", "b"}));
  EXPECT_NEAR(recs[1].expected_value, 225, 15);  // between the moved prediction (about 214) and the run (300)
  FixedPredictor absolute({{"a", pred(100, kMissing)}, {"b", pred(100, kMissing)}});
  EXPECT_GT(selector.Select(q, stats, &absolute, rng)[1].expected_value, 270);
}

// Under a latency SLO an exploration candidate stays eligible while its optimistic bound (the interval's low end for
// a latency) still meets the SLO: a candidate expected within the SLO but with a wide interval is exactly the one
// worth trying. One expected over the SLO is not placed first.
TEST(SelectorExplorationTest, SloEligibilityUsesTheOptimisticBound) {
  const TaskContext ctx = Ctx();
  ObservedStats none;  // the accelerator is unknown: nothing is "unverified"
  auto pred = [](double ms, double low, double high) {
    Prediction p;
    p.expected = p.latency_ms = ms;
    p.low = low;
    p.high = high;
    return p;
  };
  FixedPredictor model({{"a", pred(100, 95, 105)}, {"b", pred(110, 40, 300)}});
  SelectQuery q = ExploringQuery(ctx, {&kA, &kB});
  q.constraints.max_latency_ms = 150;  // b: expected 110 meets it, its interval's high end 300 does not
  const Selector selector(SelectorOptions{.exploration_rate = 0.05});
  std::mt19937_64 rng(1);
  const auto recs = selector.Select(q, none, &model, rng);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_TRUE(recs[0].meets_constraints && recs[1].meets_constraints);
  EXPECT_GT(ProbabilityOf(recs, "b"), 0.1);
  EXPECT_NEAR(ProbabilityOf(recs, "a") + ProbabilityOf(recs, "b"), 1.0, 1e-9);
  // Under an SLO of 105, b's expected 110 breaks it: b is never explored.
  q.constraints.max_latency_ms = 105;
  const auto tight = selector.Select(q, none, &model, rng);
  EXPECT_EQ(ProbabilityOf(tight, "b"), 0.0);
  EXPECT_EQ(tight[0].strategy->id, "a");
}

// Exploration never places an excluded lossy candidate first, even at rate 1 and with nothing known (where every
// candidate is otherwise a plausible winner); the output-preserving ones are still explored among themselves.
TEST(SelectorExplorationTest, ExcludedLossyCandidatesAreNeverExplored) {
  const TaskContext ctx = Ctx();
  ObservedStats none;
  const Strategy q4{"q4", {{"weights", "q4_0"}}, "", /*lossy=*/true};
  const Strategy kv8{"kv8", {{"kv_cache", "q8_0"}}, "", /*lossy=*/true};
  SelectQuery q = ExploringQuery(ctx, {&kA, &q4, &kB, &kv8});
  const Selector selector(SelectorOptions{.exploration_rate = 1.0});
  const int draws = 2000;
  const Draws mixed = Sample(selector, q, none, nullptr, draws);
  EXPECT_GT(mixed.first.count("q4") ? mixed.first.at("q4") : 0, 0) << "lossy ones are explored when allowed";

  q.constraints.exclude_lossy = true;
  const Draws d = Sample(selector, q, none, nullptr, draws);
  EXPECT_EQ(d.first.count("q4"), 0u);
  EXPECT_EQ(d.first.count("kv8"), 0u);
  EXPECT_EQ(d.returned.at("q4"), 0.0);
  EXPECT_EQ(d.returned.at("kv8"), 0.0);
  EXPECT_GT(d.first.at("a"), 0);
  EXPECT_GT(d.first.at("b"), 0);
  ExpectFrequenciesMatchProbabilities(d, draws);
}

// One node alone, unless the operator vouches for it, cannot outweigh the model in a context nobody else measured.
TEST(SelectorEvidenceTest, SingleNodeEvidenceIsDiscountedUnlessVouched) {
  const TaskContext ctx = Ctx();
  auto estimate = [&](const std::vector<std::string>& nodes, uint32_t* evidence_nodes) {
    ObservedStats stats;
    for (int i = 0; i < 20; ++i) {
      RunRecord r;
      r.run_id = "r" + std::to_string(i);
      r.node_id = nodes[i % nodes.size()];
      r.context = ctx;
      r.strategy_id = "a";
      r.metrics.e2e_latency_ms = 50;
      stats.Add(r);
    }
    FixedPredictor p({{"a", Pred(100, kMissing)}});
    SelectQuery q;
    q.context = &ctx;
    q.candidates = {&kA};
    std::mt19937_64 rng(1);
    const auto recs = Selector(SelectorOptions{}).Select(q, stats, &p, rng);
    *evidence_nodes = recs[0].evidence_nodes;
    return recs[0].expected_value;
  };
  uint32_t nodes = 0;
  const double alone = estimate({"n1"}, &nodes);
  EXPECT_EQ(nodes, 1u);
  const double many = estimate({"n1", "n2", "n3", "n4"}, &nodes);
  EXPECT_EQ(nodes, 4u);
  const double vouched = estimate({"llm-inference-bench"}, &nodes);
  // Observed 50 against a model saying 100: four nodes' 20 runs pull the estimate close to 50; one node's 20 runs
  // count as 3, so the model keeps several times the pull (in log distance from the observed 50).
  EXPECT_LT(many, 52);
  EXPECT_GT(std::log(alone / 50), 3 * std::log(many / 50));
  EXPECT_DOUBLE_EQ(vouched, many);
}

}  // namespace
}  // namespace accelsel::model
