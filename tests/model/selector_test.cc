// Selector ordering with a ranking head: model-layer candidates follow Prediction::rank_score even where the
// regressed values disagree, observed candidates keep their value-based positions, and feasibility (SLO) still
// comes from values. Also checks that a trained MetaModel fills rank scores that order its own telemetry well.
#include "model/selector.h"

#include <map>
#include <random>
#include <string>

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

}  // namespace
}  // namespace accelsel::model
