// Selector: estimate every candidate from the best evidence layer available, check constraints, rank, explore.
#include "model/selector.h"

#include <algorithm>
#include <cmath>

namespace accelsel::model {
namespace {

// Observed median and model prediction are blended in log space by inverse variance: k runs with run-to-run
// spread s_run against a model whose own interval says s_model give the observed median the weight
// k / (k + s_run^2 / s_model^2). s_run comes from the cell's own interval once it has kMinRunsForSpread runs;
// before that kPriorRunSpread, a typical run-to-run spread of repeated LLM benchmark runs (about 10%).
constexpr double kPriorRunSpread = 0.10;
constexpr uint64_t kMinRunsForSpread = 5;
// z of the 90th percentile: an 80% interval spans 2 * 1.2816 standard deviations.
constexpr double kZ80 = 1.2816;

double LogSpread(double low, double high, double coverage) {
  if (!(low > 0) || !(high > low)) return kMissing;
  const double z = coverage == 0.8 ? kZ80 : kZ80 * coverage / 0.8;  // close enough off the nominal 80%
  return (std::log(high) - std::log(low)) / (2 * z);
}

double ObservedWeight(const ObservedSummary& exact, const Prediction& pred, double coverage) {
  double run_spread = kPriorRunSpread;
  if (exact.ok_runs >= kMinRunsForSpread) {
    const double s = LogSpread(exact.low, exact.high, coverage);
    if (!std::isnan(s)) run_spread = std::max(s, 0.01);
  }
  const double model_spread = LogSpread(pred.low, pred.high, coverage);
  if (std::isnan(model_spread) || model_spread <= 0) return 1.0;
  const double pseudo_runs = (run_spread * run_spread) / (model_spread * model_spread);
  return exact.ok_runs / (exact.ok_runs + pseudo_runs);
}

// Failure probability of a cell with `failed` failures out of `total` runs: a Beta(0.5, 0.5) prior, so one OK
// run does not make a strategy look infallible and one failure does not condemn it.
double FailureProbability(uint64_t failed, uint64_t total) { return (failed + 0.5) / (total + 1.0); }

double CostOf(double latency_ms, double price_per_hour) {
  if (std::isnan(latency_ms) || price_per_hour <= 0) return 0;
  return latency_ms / 3.6e6 * price_per_hour;
}

double BlendLog(double observed, double predicted, double weight_observed) {
  if (observed <= 0 || predicted <= 0) return weight_observed >= 0.5 ? observed : predicted;
  return std::exp(weight_observed * std::log(observed) + (1 - weight_observed) * std::log(predicted));
}

// Mixed evidence layers: the value order above decides which positions model-layer candidates take (an observed
// candidate is compared with a model candidate by expected value, as before); the model-layer candidates that
// have a rank score are then reassigned to their own positions in rank-score order, within each class of equal
// feasibility (meets constraints, has an estimate), so feasibility still comes from values and intervals. Pairwise
// ranking orders candidates of one context better than regressed values do (docs/EVALUATION.md), but its scores
// are not in the objective's unit, so they cannot be compared with an observed median.
void OrderModelLayerByRank(const std::vector<double>& rank_score, const std::vector<Recommendation>& recs,
                           std::vector<size_t>* order) {
  for (int cls = 0; cls < 4; ++cls) {
    const bool meets = cls & 1, estimated = cls & 2;
    std::vector<size_t> slots;  // positions in `order`
    for (size_t p = 0; p < order->size(); ++p) {
      const size_t i = (*order)[p];
      if (recs[i].meets_constraints == meets && (recs[i].expected_value > 0) == estimated &&
          !std::isnan(rank_score[i])) {
        slots.push_back(p);
      }
    }
    if (slots.size() < 2) continue;
    std::vector<size_t> members;
    for (size_t p : slots) members.push_back((*order)[p]);
    std::stable_sort(members.begin(), members.end(), [&](size_t a, size_t b) {
      if (rank_score[a] != rank_score[b]) return rank_score[a] < rank_score[b];
      return recs[a].strategy->id < recs[b].strategy->id;
    });
    for (size_t k = 0; k < slots.size(); ++k) (*order)[slots[k]] = members[k];
  }
}

}  // namespace

std::vector<Recommendation> Selector::Select(const SelectQuery& query, const ObservedStats& stats,
                                             const Predictor* predictor, std::mt19937_64& rng) const {
  const TaskContext& ctx = *query.context;
  const Objective objective = query.objective;
  const double coverage = options_.interval_coverage;
  const double price = ctx.hardware.price_per_hour;

  std::vector<Prediction> predictions;
  if (predictor != nullptr) predictor->Predict(ctx, query.candidates, objective, &predictions);

  std::vector<Recommendation> recs;
  recs.reserve(query.candidates.size());
  for (size_t i = 0; i < query.candidates.size(); ++i) {
    const Strategy* s = query.candidates[i];
    Recommendation r;
    r.strategy = s;
    r.expected_value = kMissing;
    r.interval_low = kMissing;
    r.interval_high = kMissing;
    r.expected_latency_ms = kMissing;
    double peak_memory_gb = kMissing;
    const Prediction* pred =
        (i < predictions.size() && !std::isnan(predictions[i].expected)) ? &predictions[i] : nullptr;

    const auto exact = stats.Exact(ctx, s->id, objective, coverage);
    if (exact.has_value()) {
      const uint64_t n = exact->ok_runs + exact->failed_runs;
      r.layer = EvidenceLayer::kObserved;
      r.evidence_count = n;
      r.failure_probability = FailureProbability(exact->failed_runs, n);
      r.expected_value = exact->median;
      r.interval_low = exact->low;
      r.interval_high = exact->high;
      r.expected_latency_ms = exact->median_latency_ms;
      peak_memory_gb = exact->median_peak_memory_gb;
      if (pred != nullptr && exact->ok_runs > 0) {
        const double w = ObservedWeight(*exact, *pred, coverage);
        r.expected_value = BlendLog(exact->median, pred->expected, w);
        // With few runs the observed spread says little; widen by the model's interval.
        r.interval_low = std::min(exact->low, BlendLog(exact->low, pred->low, w));
        r.interval_high = std::max(exact->high, BlendLog(exact->high, pred->high, w));
        if (!std::isnan(pred->latency_ms) && !std::isnan(exact->median_latency_ms)) {
          r.expected_latency_ms = BlendLog(exact->median_latency_ms, pred->latency_ms, w);
        }
        r.failure_probability = w * r.failure_probability + (1 - w) * pred->failure_probability;
      } else if (pred != nullptr && exact->ok_runs == 0) {
        r.failure_probability = std::max(r.failure_probability, pred->failure_probability);
      }
    } else if (pred != nullptr) {
      r.layer = EvidenceLayer::kModel;
      r.expected_value = pred->expected;
      r.interval_low = pred->low;
      r.interval_high = pred->high;
      r.expected_latency_ms = pred->latency_ms;
      r.failure_probability = pred->failure_probability;
      peak_memory_gb = pred->peak_memory_gb;
    } else if (auto similar = stats.Similar(ctx, s->id, objective, coverage); similar.has_value()) {
      r.layer = EvidenceLayer::kPrior;
      r.evidence_count = similar->ok_runs + similar->failed_runs;
      r.failure_probability = FailureProbability(similar->failed_runs, r.evidence_count);
      r.expected_value = similar->median;
      r.interval_low = similar->low;
      r.interval_high = similar->high;
      r.expected_latency_ms = similar->median_latency_ms;
      peak_memory_gb = similar->median_peak_memory_gb;
    } else {
      r.layer = EvidenceLayer::kUnknown;
      r.failure_probability = 0;
    }
    if (objective == Objective::kE2eLatency && !std::isnan(r.expected_value)) r.expected_latency_ms = r.expected_value;
    if (objective == Objective::kCost && !std::isnan(r.expected_latency_ms)) {
      r.expected_value = CostOf(r.expected_latency_ms, price);
    }
    r.expected_cost = CostOf(r.expected_latency_ms, price);

    // Constraints. A latency SLO applies to the objective's own latency for TTFT/TPOT, else to e2e latency.
    const auto& c = query.constraints;
    const bool latency_objective = objective == Objective::kTtft || objective == Objective::kTpot;
    const double slo_value = latency_objective ? r.expected_value : r.expected_latency_ms;
    if (!std::isnan(c.max_latency_ms) && !std::isnan(slo_value) && slo_value > c.max_latency_ms) {
      r.violated.push_back("max_latency_ms");
    }
    if (!std::isnan(c.max_cost) && r.expected_cost > c.max_cost) r.violated.push_back("max_cost");
    if (!std::isnan(c.max_memory_gb) && !std::isnan(peak_memory_gb) && peak_memory_gb > c.max_memory_gb) {
      r.violated.push_back("max_memory_gb");
    }
    if (r.failure_probability > c.max_failure_probability) r.violated.push_back("max_failure_probability");
    // A strategy the network has never run on an accelerator it knows well may not apply there at all (an engine
    // built for other hardware): the model's estimate is an extrapolation, so it is not promised.
    if (r.layer != EvidenceLayer::kObserved && !ctx.hardware.accelerator.empty() &&
        stats.AcceleratorKnown(ctx.hardware.accelerator) &&
        !stats.ObservedOnAccelerator(ctx.hardware.accelerator, s->id)) {
      r.violated.push_back("unverified_on_accelerator");
    }
    // Without any estimate a latency SLO or a budget cannot be promised: say so rather than rank the unknown
    // above a candidate that is known to be slightly over.
    if (std::isnan(r.expected_value) && (!std::isnan(c.max_latency_ms) || !std::isnan(c.max_cost))) {
      r.violated.push_back("no_evidence");
    }
    r.meets_constraints = r.violated.empty();
    for (double* v : {&r.expected_value, &r.interval_low, &r.interval_high, &r.expected_latency_ms}) {
      if (std::isnan(*v)) *v = 0;  // the wire carries 0 with layer UNKNOWN; never NaN
    }
    recs.push_back(std::move(r));
  }

  const bool maximize = IsMaximized(objective);
  auto better = [maximize](const Recommendation& a, const Recommendation& b) {
    if (a.meets_constraints != b.meets_constraints) return a.meets_constraints;
    const bool ea = a.expected_value > 0, eb = b.expected_value > 0;
    if (ea != eb) return ea;
    if (a.expected_value != b.expected_value) {
      return maximize ? a.expected_value > b.expected_value : a.expected_value < b.expected_value;
    }
    return a.strategy->id < b.strategy->id;
  };
  // Rank scores of the model-layer candidates (NaN otherwise), carried through the sort by index.
  std::vector<double> rank_score(recs.size(), kMissing);
  for (size_t i = 0; i < recs.size(); ++i) {
    if (recs[i].layer == EvidenceLayer::kModel && i < predictions.size()) rank_score[i] = predictions[i].rank_score;
  }
  std::vector<size_t> order(recs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return better(recs[a], recs[b]); });
  OrderModelLayerByRank(rank_score, recs, &order);
  {
    std::vector<Recommendation> sorted;
    sorted.reserve(recs.size());
    for (size_t i : order) sorted.push_back(std::move(recs[i]));
    recs = std::move(sorted);
  }

  // Exploration: with probability `rate`, place a uniformly drawn eligible non-top candidate first. Eligible: meets
  // the constraints and its interval still reaches the latency SLO (or no SLO is set).
  if (!recs.empty()) recs[0].selection_probability = 1.0;
  const double rate = options_.exploration_rate;
  if (query.allow_exploration && rate > 0 && recs.size() > 1) {
    const double slo = query.constraints.max_latency_ms;
    std::vector<size_t> eligible;
    for (size_t i = 1; i < recs.size(); ++i) {
      const Recommendation& r = recs[i];
      if (!r.meets_constraints) continue;
      const double optimistic = maximize ? r.interval_high : r.interval_low;
      if (!std::isnan(slo) && (r.layer == EvidenceLayer::kUnknown || optimistic > slo)) continue;
      eligible.push_back(i);
    }
    if (!eligible.empty()) {
      const double each = rate / eligible.size();
      recs[0].selection_probability = 1.0 - rate;
      for (size_t i : eligible) recs[i].selection_probability = each;
      std::uniform_real_distribution<double> u(0.0, 1.0);
      if (u(rng) < rate) {
        const size_t pick = eligible[std::uniform_int_distribution<size_t>(0, eligible.size() - 1)(rng)];
        recs[pick].explored = true;
        std::rotate(recs.begin(), recs.begin() + pick, recs.begin() + pick + 1);
      }
    }
  }
  for (size_t i = 0; i < recs.size(); ++i) recs[i].rank = static_cast<uint32_t>(i + 1);
  if (query.top_k > 0 && recs.size() > query.top_k) recs.resize(query.top_k);
  return recs;
}

}  // namespace accelsel::model
