// Selector: estimate every candidate from the best evidence layer available, check constraints, rank, explore.
#include "model/selector.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

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

// Runs of a cell that only one node (not vouched for by the operator) has reported count as at most this many: one
// node alone, honest or not, cannot outweigh the network's model in a context nobody else has measured.
constexpr double kSingleNodeRuns = 3;

double EvidenceRuns(const ObservedSummary& exact) {
  const double n = static_cast<double>(exact.ok_runs);
  return exact.nodes <= 1 && !exact.vouched ? std::min(n, kSingleNodeRuns) : n;
}

// Run-to-run spread (log) of a cell: its own interval once it has kMinRunsForSpread runs, else kPriorRunSpread.
double RunSpread(const ObservedSummary& exact, double coverage) {
  if (exact.ok_runs >= kMinRunsForSpread) {
    const double s = LogSpread(exact.low, exact.high, coverage);
    if (!std::isnan(s)) return std::max(s, 0.01);
  }
  return kPriorRunSpread;
}

double ObservedWeight(const ObservedSummary& exact, double model_spread, double coverage) {
  const double run_spread = RunSpread(exact, coverage);
  if (std::isnan(model_spread) || model_spread <= 0) return 1.0;
  const double pseudo_runs = (run_spread * run_spread) / (model_spread * model_spread);
  return EvidenceRuns(exact) / (EvidenceRuns(exact) + pseudo_runs);
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
// candidate is compared with a model candidate by expected value); the model-layer candidates that
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

// What the selector believes about a candidate's objective value, in log space with lower = better (throughput is
// negated): a normal with this mean and standard deviation. NaN mean = nothing known.
struct Belief {
  double mean = kMissing;
  double sd = kMissing;
};

// A candidate nobody has an estimate for is assumed as good as the best estimated one, give or take a factor of e:
// optimism in the face of uncertainty, so the unknown gets tried rather than ranked last forever.
constexpr double kUnknownLogSpread = 1.0;
// A neighbouring workload shape of the same model and accelerator (the prior layer) says roughly how fast a strategy
// is; the shape itself can change that by tens of percent.
constexpr double kPriorShapeSpread = 0.5;
// Candidates whose optimistic bound (mean - z sd) cannot reach the best pessimistic bound are not plausible winners
// and are never explored; z = 2 leaves about 2 % one-sided.
constexpr double kPlausibleZ = 2.0;
// Bounds the quadrature's cost (it grows with the square of the plausible set).
constexpr size_t kMaxPlausible = 32;

// How many of the estimated candidates may be explored in a context that has been run `visits` times. With many
// candidates and few visits, trying each plausible one costs more than finding a slightly better one can repay
// before the context stops coming; exploring only sqrt(T) of them, for a horizon of T visits, is what works there
// (Bayati et al., "Unreasonable effectiveness of greedy algorithms in multi-armed bandit with many arms", NeurIPS
// 2020). The horizon is not known; a context seen n times is taken to be seen about as often again, T = 2 (n + 1).
// The count includes the first place: a new context explores two candidates, one run 50 times eleven.
size_t ExplorableEstimated(uint64_t visits) {
  const double horizon = 2.0 * (static_cast<double>(visits) + 1.0);
  return std::clamp<size_t>(static_cast<size_t>(std::ceil(std::sqrt(horizon))), 2, kMaxPlausible);
}

// Survival function of the standard normal.
double NormalSurvival(double x) { return 0.5 * std::erfc(x / std::sqrt(2.0)); }

// P(candidate i has the lowest value) for independent normal beliefs, by Simpson's rule over i's own normal.
std::vector<double> ProbabilityOfBeingBest(const std::vector<Belief>& b) {
  constexpr int kIntervals = 48;  // even, over [-6, 6] standard deviations
  constexpr double kHalfWidth = 6.0;
  const double h = 2 * kHalfWidth / kIntervals;
  std::vector<double> p(b.size(), 0.0);
  double total = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    double sum = 0;
    for (int k = 0; k <= kIntervals; ++k) {
      const double t = -kHalfWidth + k * h;
      const double x = b[i].mean + b[i].sd * t;
      double f = std::exp(-0.5 * t * t) / std::sqrt(2 * M_PI);
      for (size_t j = 0; j < b.size() && f > 0; ++j) {
        if (j != i) f *= NormalSurvival((x - b[j].mean) / b[j].sd);
      }
      sum += f * ((k == 0 || k == kIntervals) ? 1 : (k % 2 == 1 ? 4 : 2));
    }
    p[i] = sum * h / 3;
    total += p[i];
  }
  for (double& v : p) v = total > 0 ? v / total : 1.0 / b.size();
  return p;
}

// The model-layer candidates stand in rank-head order (OrderModelLayerByRank); their regressed means are handed
// out again in that order, so the exploration policy agrees with the ranking on which of them looks best while
// each keeps its own uncertainty.
void AlignModelBeliefsWithRank(const std::vector<Recommendation>& recs, std::vector<Belief>* beliefs) {
  std::vector<size_t> slots;
  std::vector<double> means;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (recs[i].layer == EvidenceLayer::kModel && !std::isnan((*beliefs)[i].mean)) {
      slots.push_back(i);
      means.push_back((*beliefs)[i].mean);
    }
  }
  std::sort(means.begin(), means.end());
  for (size_t k = 0; k < slots.size(); ++k) (*beliefs)[slots[k]].mean = means[k];
}

// The model learns every run at its strategy's base level (ObservedStats::ToBaseLevel); its predictions are moved to
// each strategy's level now. A ranking head cannot be moved that way, so where levels differ among the candidates
// their order comes from the moved values instead.
void FollowStrategyLevels(const std::vector<const Strategy*>& candidates, Objective objective,
                          const ObservedStats& stats, std::vector<Prediction>* predictions) {
  bool moved = false;
  for (size_t i = 0; i < predictions->size() && i < candidates.size(); ++i) {
    const double level = stats.LogLevel(candidates[i]->id);
    if (level == 0) continue;
    moved = true;
    Prediction& p = (*predictions)[i];
    const double f = std::exp(IsMaximized(objective) ? -level : level);
    for (double* v : {&p.expected, &p.low, &p.high}) *v *= f;
    p.latency_ms *= std::exp(level);
  }
  if (moved) {
    for (Prediction& p : *predictions) p.rank_score = kMissing;
  }
}

// The model's error in this context, shared by every strategy of it (the context is slower or faster than the model
// thinks), estimated from the candidates the network has run here: each observed median against its prediction,
// weighted by how far a prediction may be off against its context's others (the relative spread) and the runs'
// own spread, and shrunk towards 0 by the spread contexts have around the model (the interval's variance less the
// relative part). Moving the unrun candidates' predictions by it compares them with the run ones on one footing.
constexpr size_t kEveryCandidate = std::numeric_limits<size_t>::max();

// Moves a prediction by the context's shift (a factor in the objective's unit); its e2e latency moves too where the
// objective is that latency or its cost.
void MovePrediction(double log_shift, Objective objective, Prediction* p) {
  const double f = std::exp(log_shift);
  for (double* v : {&p->expected, &p->low, &p->high}) *v *= f;
  if (objective == Objective::kE2eLatency || objective == Objective::kCost) p->latency_ms *= f;
}

struct ContextOffset {
  // Sums over the run candidates: precision (1 / v) and precision-weighted log residual; each candidate's own share
  // so that its own blend can leave itself out (its run would otherwise count twice: in the shift and as itself).
  double precision = 0;
  double weighted = 0;
  double shared_variance = kMissing;  // prior variance of the shift: the contexts' spread around the model
  std::vector<double> own_precision, own_weighted;  // by candidate; 0 where it did not contribute

  // The shift and its variance from every run candidate but `leave_out` (kEveryCandidate: all). False when nothing
  // is left.
  bool Estimate(size_t leave_out, double* log_shift, double* variance) const {
    const double p = precision - (leave_out < own_precision.size() ? own_precision[leave_out] : 0.0);
    const double w = weighted - (leave_out < own_weighted.size() ? own_weighted[leave_out] : 0.0);
    if (!(p > 1e-12) || !(shared_variance > 0)) return false;
    *variance = 1 / (p + 1 / shared_variance);
    *log_shift = w * *variance;
    return true;
  }
};

ContextOffset EstimateContextOffset(const std::vector<std::optional<ObservedSummary>>& exact,
                                    const std::vector<Prediction>& predictions, double coverage) {
  ContextOffset o;
  o.own_precision.assign(exact.size(), 0.0);
  o.own_weighted.assign(exact.size(), 0.0);
  for (size_t i = 0; i < exact.size() && i < predictions.size(); ++i) {
    const Prediction& p = predictions[i];
    const double rel = p.relative_log_sd;
    const double spread = LogSpread(p.low, p.high, coverage);
    if (!(rel > 0) || !(spread > 0) || !(p.expected > 0)) continue;
    if (std::isnan(o.shared_variance)) o.shared_variance = std::max(spread * spread - rel * rel, 0.0);
    if (!exact[i].has_value() || exact[i]->ok_runs == 0 || !(exact[i]->median > 0)) continue;
    const double run = RunSpread(*exact[i], coverage);
    const double v = rel * rel + run * run / EvidenceRuns(*exact[i]);
    o.own_precision[i] = 1 / v;
    o.own_weighted[i] = (std::log(exact[i]->median) - std::log(p.expected)) / v;
    o.precision += o.own_precision[i];
    o.weighted += o.own_weighted[i];
  }
  return o;
}

// Whether exploration may place `r` first: it meets the constraints, except that it may still be unverified on the
// accelerator (trying it is how it gets verified), and under a latency SLO its optimistic bound still reaches it.
bool Explorable(const Recommendation& r, const SelectQuery& query) {
  for (const std::string& v : r.violated) {
    if (v != "unverified_on_accelerator") return false;
  }
  const double slo = query.constraints.max_latency_ms;
  if (std::isnan(slo)) return true;
  const double optimistic = IsMaximized(query.objective) ? r.interval_high : r.interval_low;
  return r.layer != EvidenceLayer::kUnknown && optimistic <= slo;
}

// The exploration policy: the probability with which each (ranked) candidate is placed first. Among the plausible
// winners (outside them: 0), the first place, the candidates without an estimate and, of the estimated others, the
// ExplorableEstimated(visits) - 1 most likely to be best are kept (the rest: 0). Each kept one gets (1 - floor) x its
// probability of being best under the selector's beliefs, renormalised over the kept ones (probability matching,
// as Thompson sampling does, but computed, so the returned propensity is exact), plus `floor` spread evenly over
// the kept ones. Empty = no exploration possible (the first place stays first with probability 1).
std::vector<double> FirstPlaceProbabilities(const std::vector<Recommendation>& recs, std::vector<Belief> beliefs,
                                            const SelectQuery& query, double floor, uint64_t visits) {
  std::vector<size_t> eligible;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (Explorable(recs[i], query)) eligible.push_back(i);
  }
  if (eligible.size() < 2 || eligible[0] != 0) return {};
  double best_known = kMissing;
  for (size_t i : eligible) {
    if (!std::isnan(beliefs[i].mean) && !(beliefs[i].mean >= best_known)) best_known = beliefs[i].mean;
  }
  for (size_t i : eligible) {
    Belief& b = beliefs[i];
    if (std::isnan(b.mean)) b = Belief{std::isnan(best_known) ? 0.0 : best_known, kUnknownLogSpread};
    if (!(b.sd > 1e-3)) b.sd = 1e-3;
  }
  double best_pessimistic = std::numeric_limits<double>::infinity();
  for (size_t i : eligible)
    best_pessimistic = std::min(best_pessimistic, beliefs[i].mean + kPlausibleZ * beliefs[i].sd);
  std::vector<size_t> plausible;
  for (size_t i : eligible) {
    if (i == 0 || beliefs[i].mean - kPlausibleZ * beliefs[i].sd <= best_pessimistic) plausible.push_back(i);
  }
  if (plausible.size() > kMaxPlausible) {
    std::stable_sort(plausible.begin() + 1, plausible.end(), [&](size_t a, size_t b) {
      return beliefs[a].mean - kPlausibleZ * beliefs[a].sd < beliefs[b].mean - kPlausibleZ * beliefs[b].sd;
    });
    plausible.resize(kMaxPlausible);
  }
  std::vector<Belief> contenders;
  for (size_t i : plausible) contenders.push_back(beliefs[i]);
  const std::vector<double> best = ProbabilityOfBeingBest(contenders);
  // The first place and the candidates nobody has an estimate for always stay; of the estimated others, those most
  // likely to be best, as many as the context's visits allow.
  std::vector<size_t> ranked;  // positions in `plausible`
  std::vector<bool> kept(plausible.size(), false);
  for (size_t k = 0; k < plausible.size(); ++k) {
    if (k == 0 || recs[plausible[k]].layer == EvidenceLayer::kUnknown) {
      kept[k] = true;
    } else {
      ranked.push_back(k);
    }
  }
  std::stable_sort(ranked.begin(), ranked.end(), [&](size_t a, size_t b) { return best[a] > best[b]; });
  const size_t explorable_others = ExplorableEstimated(visits) - 1;  // the first place is one of them
  for (size_t r = 0; r < ranked.size() && r < explorable_others; ++r) kept[ranked[r]] = true;
  double kept_best = 0;
  size_t kept_count = 0;
  for (size_t k = 0; k < plausible.size(); ++k) {
    if (!kept[k]) continue;
    kept_best += best[k];
    ++kept_count;
  }
  std::vector<double> pi(recs.size(), 0.0);
  for (size_t k = 0; k < plausible.size(); ++k) {
    if (!kept[k]) continue;
    const double matched = kept_best > 0 ? best[k] / kept_best : 1.0 / static_cast<double>(kept_count);
    pi[plausible[k]] = (1 - floor) * matched + floor / static_cast<double>(kept_count);
  }
  return pi;
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
  FollowStrategyLevels(query.candidates, objective, stats, &predictions);

  std::vector<std::optional<ObservedSummary>> observed(query.candidates.size());
  for (size_t i = 0; i < query.candidates.size(); ++i) {
    observed[i] = stats.Exact(ctx, query.candidates[i]->id, objective, coverage);
  }
  const ContextOffset offset = EstimateContextOffset(observed, predictions, coverage);
  double shift = 0, shift_variance = 0;
  const bool shifted = offset.Estimate(kEveryCandidate, &shift, &shift_variance);
  if (shifted) {
    for (size_t i = 0; i < predictions.size() && i < observed.size(); ++i) {
      if (!observed[i].has_value()) MovePrediction(shift, objective, &predictions[i]);
    }
  }

  std::vector<Recommendation> recs;
  recs.reserve(query.candidates.size());
  std::vector<Belief> belief(query.candidates.size());  // by candidate index
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
    Prediction moved;  // *pred moved by the context's shared error, where `pred` points to it

    const std::optional<ObservedSummary>& exact = observed[i];
    if (exact.has_value()) {
      const uint64_t n = exact->ok_runs + exact->failed_runs;
      r.layer = EvidenceLayer::kObserved;
      r.evidence_count = n;
      r.evidence_nodes = exact->nodes;
      r.failure_probability = FailureProbability(exact->failed_runs, n);
      r.expected_value = exact->median;
      r.interval_low = exact->low;
      r.interval_high = exact->high;
      r.expected_latency_ms = exact->median_latency_ms;
      peak_memory_gb = exact->median_peak_memory_gb;
      if (exact->ok_runs > 0) {
        const double run_spread = RunSpread(*exact, coverage);
        belief[i].sd = run_spread / std::sqrt(EvidenceRuns(*exact));
      }
      if (pred != nullptr && exact->ok_runs > 0) {
        // Where the context's shared error is estimated, the model's prediction moved by it errs by the relative
        // spread (and what is unsure about the shift) only: a single noisy run no longer outweighs it.
        // The shift comes from the other run candidates only: this one's runs are the observation blended here.
        double ms = LogSpread(pred->low, pred->high, coverage);
        double own_shift = 0, own_variance = 0;
        if (const double rel = pred->relative_log_sd;
            rel > 0 && rel < ms && offset.Estimate(i, &own_shift, &own_variance)) {
          moved = *pred;
          MovePrediction(own_shift, objective, &moved);
          pred = &moved;
          ms = std::sqrt(rel * rel + own_variance);
        }
        const double w = ObservedWeight(*exact, ms, coverage);
        // The blend's precision: the runs' and the model's, added.
        if (ms > 0) belief[i].sd = 1 / std::sqrt(1 / (belief[i].sd * belief[i].sd) + 1 / (ms * ms));
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
      // Against the other candidates the model errs by its relative spread only (plus what is unsure about the
      // context's offset, once run candidates are compared with unrun ones); the interval's width is mostly the
      // error the context shares, which does not change which candidate is best.
      const double ms = LogSpread(pred->low, pred->high, coverage);
      const double rel = pred->relative_log_sd;
      if (rel > 0 && (ms > 0 ? rel < ms : true)) {
        belief[i].sd = std::sqrt(rel * rel + shift_variance);
      } else {
        belief[i].sd = ms > 0 ? ms : kUnknownLogSpread;
      }
    } else if (auto similar = stats.Similar(ctx, s->id, objective, coverage); similar.has_value()) {
      r.layer = EvidenceLayer::kPrior;
      r.evidence_count = similar->ok_runs + similar->failed_runs;
      r.evidence_nodes = similar->nodes;
      r.failure_probability = FailureProbability(similar->failed_runs, r.evidence_count);
      r.expected_value = similar->median;
      r.interval_low = similar->low;
      r.interval_high = similar->high;
      r.expected_latency_ms = similar->median_latency_ms;
      peak_memory_gb = similar->median_peak_memory_gb;
      const double run_spread = RunSpread(*similar, coverage);
      belief[i].sd = std::sqrt(run_spread * run_spread + kPriorShapeSpread * kPriorShapeSpread);
    } else {
      r.layer = EvidenceLayer::kUnknown;
      r.failure_probability = 0;
    }
    if (objective == Objective::kE2eLatency && !std::isnan(r.expected_value)) r.expected_latency_ms = r.expected_value;
    if (objective == Objective::kCost && !std::isnan(r.expected_latency_ms)) {
      r.expected_value = CostOf(r.expected_latency_ms, price);
    }
    r.expected_cost = CostOf(r.expected_latency_ms, price);
    if (r.expected_value > 0 && !std::isnan(belief[i].sd)) {
      belief[i].mean = IsMaximized(objective) ? -std::log(r.expected_value) : std::log(r.expected_value);
    } else {
      belief[i] = Belief{};
    }

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
    if (c.exclude_lossy && s->lossy) r.violated.push_back("exclude_lossy");
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

  if (!recs.empty()) recs[0].selection_probability = 1.0;
  if (query.allow_exploration && options_.exploration_rate > 0 && recs.size() > 1) {
    std::vector<Belief> beliefs(recs.size());
    for (size_t i = 0; i < recs.size(); ++i) beliefs[i] = belief[order[i]];
    AlignModelBeliefsWithRank(recs, &beliefs);
    uint64_t visits = 0;  // runs of this very context so far
    for (const auto& o : observed) {
      if (o.has_value()) visits += o->ok_runs + o->failed_runs;
    }
    const std::vector<double> pi = FirstPlaceProbabilities(recs, beliefs, query, options_.exploration_rate, visits);
    if (!pi.empty()) {
      for (size_t i = 0; i < recs.size(); ++i) recs[i].selection_probability = pi[i];
      std::discrete_distribution<size_t> draw(pi.begin(), pi.end());
      const size_t pick = draw(rng);
      if (pick != 0) {
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
