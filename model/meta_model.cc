// MetaModel training, prediction, holdout evaluation and persistence; see meta_model.h.
#include "model/meta_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "model/features.h"
#include "util/blob.h"
#include "util/job_pool.h"

namespace accelsel::model {

using util::ByteReader;
using util::ByteWriter;
using util::OpenBlob;
using util::RunJobs;
using util::SealBlob;

namespace {

using Head = MetaModel::Head;

// The value a head learns, as log cost (minimised); NaN when the run does not report it.
double HeadTarget(const RunRecord& r, Head head) {
  const RunMetrics& m = r.metrics;
  double v = kMissing;
  switch (head) {
    case MetaModel::kE2e: v = m.e2e_latency_ms; break;
    case MetaModel::kTtft: v = m.ttft_ms; break;
    case MetaModel::kTpot: v = m.tpot_ms; break;
    case MetaModel::kThroughput: v = m.throughput_tokens_per_s; break;
    case MetaModel::kPeakMemory: v = m.peak_memory_gb; break;
    case MetaModel::kNumHeads: break;
  }
  if (IsMissing(v) || !(v > 0) || !std::isfinite(v)) return kMissing;
  return head == MetaModel::kThroughput ? -std::log(v) : std::log(v);
}

BaselineMetric MetricOf(Head head) {
  switch (head) {
    case MetaModel::kTtft: return BaselineMetric::kTtftMs;
    case MetaModel::kTpot: return BaselineMetric::kTpotMs;
    case MetaModel::kThroughput: return BaselineMetric::kThroughput;
    case MetaModel::kPeakMemory: return BaselineMetric::kPeakMemoryGb;
    case MetaModel::kE2e:
    case MetaModel::kNumHeads: break;
  }
  return BaselineMetric::kE2eMs;
}

uint64_t VectorKey(const float* x, size_t n) {
  return StableHash(std::string_view(reinterpret_cast<const char*>(x), n * sizeof(float)), 7);
}

}  // namespace

MetaModel::Head MetaModel::HeadFor(Objective o) {
  switch (o) {
    case Objective::kTtft: return kTtft;
    case Objective::kTpot: return kTpot;
    case Objective::kThroughput: return kThroughput;
    case Objective::kE2eLatency:
    case Objective::kCost:
    default: return kE2e;
  }
}

// In the head's log-cost space (throughput is stored negated); 0 when there is no baseline.
double MetaModel::Baseline(const TaskContext& c, Head head) const {
  if (!roofline_baseline_) return 0;
  const double b = LogRooflineBaseline(c, MetricOf(head));
  if (IsMissing(b)) return 0;
  return head == kThroughput ? -b : b;
}

bool MetaModel::HasObjective(Objective objective) const { return heads_[HeadFor(objective)] != nullptr; }

bool MetaModel::HasRankHead(Objective objective) const { return rank_heads_[HeadFor(objective)] != nullptr; }

bool MetaModel::HasHeadsWithoutBaseline() const {
  for (const auto& h : raw_heads_) {
    if (h != nullptr) return true;
  }
  return false;
}

absl::Status MetaModel::TrainRankHead(Head head, const Dataset& d, const XgbParams& params, size_t max_fit_rows) {
  // One row per (context, strategy) cell with the cell's mean target: repeated runs of one cell would only add
  // pairs between identical feature vectors.
  absl::flat_hash_map<uint64_t, std::pair<double, uint32_t>> cells;  // (task << 32 | strat) -> (sum, count)
  std::vector<uint32_t> strategies_of_task(d.num_tasks(), 0);
  for (const Dataset::Row& r : d.rows) {
    auto [it, inserted] = cells.try_emplace((uint64_t{r.task} << 32) | r.strat, 0.0, 0u);
    it->second.first += r.y;
    it->second.second += 1;
    if (inserted) ++strategies_of_task[r.task];
  }
  Dataset rd;
  rd.task_dim = d.task_dim;
  rd.strat_dim = d.strat_dim;
  rd.features = &d.f();  // the same encoded tasks and strategies, not a copy (~100 MB at 1M runs)
  for (const auto& [key, sum] : cells) {
    const uint32_t task = static_cast<uint32_t>(key >> 32);
    if (strategies_of_task[task] < 2) continue;
    rd.rows.push_back({task, static_cast<uint32_t>(key & 0xffffffffu), static_cast<float>(sum.first / sum.second)});
  }
  if (rd.rows.empty()) return absl::OkStatus();
  // Hash-map order is not stable across builds; the ranker's row order (within a task) must be.
  std::sort(rd.rows.begin(), rd.rows.end(), [](const Dataset::Row& a, const Dataset::Row& b) {
    return a.task != b.task ? a.task < b.task : a.strat < b.strat;
  });
  XgbLearnerOptions lo;
  lo.mode = XgbLearnerOptions::Mode::kPairwise;
  lo.params = params;
  lo.interval_folds = 0;
  lo.max_fit_rows = max_fit_rows;  // the row budget of the regression heads (TrainOptions::max_fit_rows)
  auto ranker = std::make_unique<XgbLearner>(lo);
  if (auto s = ranker->Fit(rd); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("training ranking head ", head, ": ", s.message()));
  }
  rank_heads_[head] = std::move(ranker);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MetaModel>> MetaModel::Train(const std::vector<RunRecord>& runs,
                                                            const TrainOptions& options) {
  std::unique_ptr<MetaModel> mm(new MetaModel());
  mm->version_ = options.version;
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    mm->novel_model_[h] = mm->novel_accelerator_[h] = {kMissing, kMissing};
    mm->raw_novel_model_[h] = mm->raw_novel_accelerator_[h] = {kMissing, kMissing};
  }
  for (const RunRecord& r : runs) {
    mm->known_models_.insert(absl::AsciiStrToLower(r.context.model.name));
    mm->known_accelerators_.insert(absl::AsciiStrToLower(r.context.hardware.accelerator));
  }
  mm->use_vocabulary_ = options.drop_unseen_tokens;
  if (mm->use_vocabulary_) {
    for (const RunRecord& r : runs) CollectContextVocabulary(r.context, &mm->vocabulary_);
  }
  mm->coverage_ = options.interval_coverage;
  mm->roofline_baseline_ = options.roofline_baseline;
  bool wanted[kNumHeads] = {};
  wanted[kPeakMemory] = options.train_peak_memory;
  for (Objective o : options.objectives) wanted[HeadFor(o)] = true;
  for (const Strategy& s : options.catalog) {
    if (!s.components.empty()) mm->catalog_[s.id] = s.components;
  }
  // Encode every distinct context and strategy once.
  Dataset all;
  all.task_dim = ContextFeatureWidth();
  all.strat_dim = StrategyFeatureWidth();
  absl::flat_hash_map<uint64_t, uint32_t> task_index;
  absl::flat_hash_map<std::string, uint32_t> strat_index;
  std::vector<uint32_t> run_task(runs.size()), run_strat(runs.size());
  std::vector<uint64_t> task_model, task_accelerator;  // group ids of each task, for novelty intervals
  std::vector<float> ctx;
  for (size_t i = 0; i < runs.size(); ++i) {
    ctx.clear();
    EncodeContext(runs[i].context, &ctx);
    const uint64_t key = VectorKey(ctx.data(), ctx.size());
    auto [it, inserted] = task_index.try_emplace(key, static_cast<uint32_t>(task_index.size()));
    if (inserted) {
      all.task_x.insert(all.task_x.end(), ctx.begin(), ctx.end());
      task_model.push_back(StableHash(absl::AsciiStrToLower(runs[i].context.model.name), 41));
      task_accelerator.push_back(StableHash(absl::AsciiStrToLower(runs[i].context.hardware.accelerator), 42));
    }
    run_task[i] = it->second;
    auto [sit, sinserted] = strat_index.try_emplace(runs[i].strategy_id, static_cast<uint32_t>(strat_index.size()));
    if (sinserted) {
      Strategy s{runs[i].strategy_id, {}, ""};
      if (auto c = mm->catalog_.find(s.id); c != mm->catalog_.end()) s.components = c->second;
      EncodeStrategy(s, &all.strat_x);
      all.strat_key.push_back(StableHash(s.id));
    }
    run_strat[i] = sit->second;
  }
  uint64_t ok_runs = 0, failed_runs = 0;
  for (const RunRecord& r : runs) (IsFailure(r.status) ? failed_runs : ok_runs) += 1;
  mm->training_rows_ = runs.size();

  // Failure estimate: a classifier when failures are common enough to learn from, else a smoothed rate. It reads
  // only the encoded tasks and strategies (never the per-head rows), so it trains beside the first head's boosters.
  mm->failure_base_rate_ = (failed_runs + 0.5) / (runs.size() + 1.0);
  std::function<absl::Status()> classifier_job;
  if (failed_runs >= options.min_failures_for_classifier && ok_runs >= options.min_failures_for_classifier) {
    classifier_job = [&]() -> absl::Status {
      const size_t cols = all.task_dim + all.strat_dim;
      // Within the row budget: the runs of a hash-chosen share of the task contexts.
      std::vector<size_t> picked;
      const bool sample = options.max_fit_rows > 0 && runs.size() > options.max_fit_rows;
      const double share = static_cast<double>(options.max_fit_rows) / static_cast<double>(runs.size());
      for (size_t i = 0; i < runs.size(); ++i) {
        if (!sample ||
            static_cast<double>(StableHash(absl::StrCat(run_task[i]), 43)) < share * 18446744073709551615.0) {
          picked.push_back(i);
        }
      }
      std::vector<float> labels(picked.size());
      for (size_t k = 0; k < picked.size(); ++k) labels[k] = IsFailure(runs[picked[k]].status) ? 1.0f : 0.0f;
      const XgbBooster::RowBlockFn fill = [&](size_t begin, size_t end, float* out) {
        for (size_t k = begin; k < end; ++k, out += cols) {
          const size_t i = picked[k];
          std::copy_n(all.task(run_task[i]), all.task_dim, out);
          std::copy_n(all.strat(run_strat[i]), all.strat_dim, out + all.task_dim);
        }
      };
      XgbParams p = options.xgb;
      p.objective = "binary:logistic";
      p.num_rounds = std::min(p.num_rounds, 100);
      auto b = XgbBooster::TrainFromBlocks(fill, picked.size(), cols, labels, {}, p,
                                           options.sparse_indicators ? IndicatorColumns(all) : std::vector<bool>());
      if (!b.ok()) return b.status();
      mm->failure_classifier_ = std::move(*b);
      return absl::OkStatus();
    };
  }

  for (uint32_t h = 0; h < kNumHeads; ++h) {
    const Head head = static_cast<Head>(h);
    if (!wanted[head]) continue;
    // Every head shares the encoded tasks and strategies; only the rows (and targets) differ. Heads run one after
    // the other (they share `all.rows`); the boosters of one head are trained `options.threads` at a time.
    Dataset& d = all;
    d.rows.clear();
    // The same rows without the baseline: the candidate target for unseen models / accelerators (raw_heads_).
    Dataset raw;
    raw.task_dim = d.task_dim;
    raw.strat_dim = d.strat_dim;
    raw.features = &all;
    bool any_baseline = false;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (IsFailure(runs[i].status)) continue;
      const double y = HeadTarget(runs[i], head);
      if (IsMissing(y)) continue;
      const double b = mm->Baseline(runs[i].context, head);
      d.rows.push_back({run_task[i], run_strat[i], static_cast<float>(y - b)});
      raw.rows.push_back({run_task[i], run_strat[i], static_cast<float>(y)});
      any_baseline = any_baseline || b != 0;
    }
    if (d.rows.size() < options.min_rows_per_head) continue;
    // The e2e head only: it gives every candidate's expected latency and the latency and cost objectives. The
    // comparison costs 6 fold models per head, and for all four objectives a 1M-run retrain took ~40 % longer.
    const bool compare_raw = options.raw_heads_for_novel && any_baseline && head == kE2e && options.novelty_folds >= 2;
    if (!compare_raw) raw.rows.clear();
    XgbLearnerOptions lo;
    lo.params = options.xgb;
    lo.interval_folds = head == kPeakMemory ? 0 : options.interval_folds;
    lo.coverage = options.interval_coverage;
    lo.calibration_max_rows = options.calibration_max_rows;
    lo.max_fit_rows = options.max_fit_rows;
    lo.sparse_indicators = options.sparse_indicators;
    auto learner = std::make_unique<XgbLearner>(lo);
    // Largest jobs first, so that the last ones to start are short.
    std::vector<std::function<absl::Status()>> jobs;
    jobs.push_back([&]() -> absl::Status {
      if (auto s = learner->Fit(d); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("training head ", head, ": ", s.message()));
      }
      return absl::OkStatus();
    });
    if (options.rank_heads && head != kPeakMemory) {
      jobs.push_back([&]() { return mm->TrainRankHead(head, d, options.xgb, options.max_fit_rows); });
    }
    if (classifier_job) {
      jobs.push_back(std::move(classifier_job));
      classifier_job = nullptr;
    }
    // Held-out models, then held-out accelerators: with the baseline, and (compare_raw) without it.
    XgbLearner::GroupedResiduals scored[2][2];
    if (head != kPeakMemory && options.novelty_folds >= 2) {
      // ScoreGroupedResiduals trains fold models of its own from the learner's options; it does not read the
      // fitted booster, so it runs beside Fit. Both targets use the same rows, folds and seeds: a paired comparison.
      const std::vector<uint64_t>* groupings[2] = {&task_model, &task_accelerator};
      for (int g = 0; g < 2; ++g) {
        for (int target = 0; target < (compare_raw ? 2 : 1); ++target) {
          // Init-captures: clang before 16 cannot capture a structured binding by name (P1091 is C++20).
          jobs.push_back(
              [&learner, &options, data = target == 0 ? &d : &raw, groups = groupings[g], out = &scored[g][target]]() {
                if (auto q = learner->ScoreGroupedResiduals(*data, *groups, options.novelty_folds); q.ok()) *out = *q;
                return absl::OkStatus();
              });
        }
      }
    }
    if (auto s = RunJobs(jobs, options.threads); !s.ok()) return s;
    mm->heads_[head] = std::move(learner);
    if (head == kPeakMemory || options.novelty_folds < 2) continue;
    mm->novel_model_[head] = {scored[0][0].lo, scored[0][0].hi};
    mm->novel_accelerator_[head] = {scored[1][0].lo, scored[1][0].hi};
    if (!compare_raw) continue;
    // Without the baseline where it erred less on the held-out groups (mean |log error|, same rows).
    const uint32_t bits[2] = {kRawForNovelModel, kRawForNovelAccelerator};
    uint32_t chosen = 0;
    for (int g = 0; g < 2; ++g) {
      if (scored[g][1].mean_abs < scored[g][0].mean_abs) chosen |= bits[g];
    }
    if (chosen == 0) continue;
    XgbLearnerOptions ro = mm->heads_[head]->options();
    ro.interval_folds = 0;  // its intervals are the grouped quantiles
    // The calibration budget, not the final fit's: it was chosen on fold models of that size, and its error on an
    // unseen device is ruled by the device's offset, not by rows (a full fit here made a 1M-run retrain ~40 % longer).
    if (options.calibration_max_rows > 0) ro.max_fit_rows = options.calibration_max_rows;
    auto raw_learner = std::make_unique<XgbLearner>(ro);
    if (auto s = raw_learner->Fit(raw); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("training head ", head, " without baseline: ", s.message()));
    }
    mm->raw_heads_[head] = std::move(raw_learner);
    mm->raw_for_novel_[head] = chosen;
    mm->raw_novel_model_[head] = {scored[0][1].lo, scored[0][1].hi};
    mm->raw_novel_accelerator_[head] = {scored[1][1].lo, scored[1][1].hi};
  }
  if (mm->heads_[kE2e] == nullptr && mm->heads_[kThroughput] == nullptr && mm->heads_[kTtft] == nullptr &&
      mm->heads_[kTpot] == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("not enough OK runs to train any objective (need ", options.min_rows_per_head, ")"));
  }
  return mm;
}

void MetaModel::EncodeStrategies(const std::vector<const Strategy*>& strategies, bool cached, std::vector<float>* x,
                                 std::vector<CandidateRef>* refs) const {
  const size_t w = StrategyFeatureWidth();
  x->clear();
  x->reserve(strategies.size() * w);
  refs->resize(strategies.size());
  for (size_t i = 0; i < strategies.size(); ++i) {
    const Strategy* s = strategies[i];
    auto c = catalog_.find(s->id);
    // The model's own components of a strategy it was trained on win over the caller's.
    const Strategy* as_trained = s;
    Strategy redefined;
    if (c != catalog_.end() && c->second != s->components) {
      redefined = Strategy{s->id, c->second, ""};
      as_trained = &redefined;
    }
    if (cached) {
      (*refs)[i].key = strategy_encodings_.Append(*as_trained, x);
    } else {
      EncodeStrategy(*as_trained, x);  // what the cache holds for it (StrategyEncodingCache::Append)
      (*refs)[i].key = StableHash(as_trained->id);
    }
  }
  for (size_t i = 0; i < strategies.size(); ++i) (*refs)[i].x = x->data() + i * w;
}

void MetaModel::Predict(const TaskContext& context, const std::vector<const Strategy*>& strategies, Objective objective,
                        std::vector<Prediction>* out) const {
  PredictWith(context, strategies, objective, /*cached_encodings=*/true, out);
}

void MetaModel::PredictWith(const TaskContext& context, const std::vector<const Strategy*>& strategies,
                            Objective objective, bool cached_encodings, std::vector<Prediction>* out) const {
  out->assign(strategies.size(), Prediction{});
  if (strategies.empty()) return;
  std::vector<float> task_x;
  task_x.reserve(ContextFeatureWidth());
  EncodeContext(context, use_vocabulary_ ? &vocabulary_ : nullptr, &task_x);
  std::vector<float> strat_x;
  std::vector<CandidateRef> refs;
  EncodeStrategies(strategies, cached_encodings, &strat_x, &refs);
  std::vector<LogPrediction> lp;
  double relative_sd = kMissing;  // of the head run last
  const bool novel_model = !known_models_.count(absl::AsciiStrToLower(context.model.name));
  const bool novel_accelerator = !known_accelerators_.count(absl::AsciiStrToLower(context.hardware.accelerator));
  auto run_head = [&](Head head) -> bool {
    // The head without baseline where training found it carries over better to what this context lacks.
    const uint32_t novel = (novel_model ? kRawForNovelModel : 0) | (novel_accelerator ? kRawForNovelAccelerator : 0);
    const bool raw = raw_heads_[head] != nullptr && (raw_for_novel_[head] & novel) != 0;
    const XgbLearner* learner = raw ? raw_heads_[head].get() : heads_[head].get();
    if (learner == nullptr || !learner->Predict(task_x.data(), refs, &lp).ok() || lp.size() != strategies.size()) {
      return false;
    }
    const double b = raw ? 0.0 : Baseline(context, head);
    // A model or accelerator never seen in training: the interval of held-out models / accelerators, if wider.
    double lo_shift = kMissing, hi_shift = kMissing;
    auto widen = [&](const std::pair<double, double>& q) {
      if (IsMissing(q.first)) return;
      lo_shift = IsMissing(lo_shift) ? q.first : std::min(lo_shift, q.first);
      hi_shift = IsMissing(hi_shift) ? q.second : std::max(hi_shift, q.second);
    };
    if (novel_model) widen(raw ? raw_novel_model_[head] : novel_model_[head]);
    if (novel_accelerator) widen(raw ? raw_novel_accelerator_[head] : novel_accelerator_[head]);
    if (raw) {
      // The head without baseline sets the level (the mean log value over the candidates asked); the baseline head
      // keeps the differences between them. What an unseen device gets wrong is one offset for all its strategies;
      // the raw head, which must also fit every context's level, orders strategies less well, and served whole it
      // made the closed loop explore a new device worse (eval/results/2026-12-07-unseen-hardware-and-models.md).
      std::vector<LogPrediction> shape;
      if (heads_[head]->Predict(task_x.data(), refs, &shape).ok() && shape.size() == lp.size()) {
        const double base = Baseline(context, head);
        double level = 0;
        for (size_t i = 0; i < lp.size(); ++i) level += lp[i].mean - (shape[i].mean + base);
        level /= static_cast<double>(lp.size());
        for (size_t i = 0; i < lp.size(); ++i) lp[i].mean = shape[i].mean + base + level;
      }
      // No interval folds of its own: the grouped quantiles are its interval (the head's own, if they are missing).
      if (IsMissing(lo_shift)) {
        lo_shift = heads_[head]->residual_lo();
        hi_shift = heads_[head]->residual_hi();
      }
      for (LogPrediction& p : lp) p.lo = p.hi = p.mean;
    }
    // Where the interval widens for an unseen model or accelerator, the relative error is taken to grow alike.
    relative_sd = heads_[head]->relative_sd();
    const double width = heads_[head]->residual_hi() - heads_[head]->residual_lo();
    if (!IsMissing(lo_shift) && width > 0) {
      relative_sd *= std::max(
          1.0,
          (std::max(hi_shift, heads_[head]->residual_hi()) - std::min(lo_shift, heads_[head]->residual_lo())) / width);
    }
    for (LogPrediction& p : lp) {
      if (!IsMissing(lo_shift) && !std::isnan(p.lo)) {
        p.lo = std::min(p.lo, p.mean + lo_shift);
        p.hi = std::max(p.hi, p.mean + hi_shift);
      }
      p.mean += b;
      p.lo += b;
      p.hi += b;
    }
    return true;
  };
  // Latency first: every objective reports it, and cost is derived from it.
  if (run_head(kE2e)) {
    for (size_t i = 0; i < lp.size(); ++i) (*out)[i].latency_ms = std::exp(lp[i].mean);
    if (objective == Objective::kE2eLatency || objective == Objective::kCost) {
      // Cost = time × price: price per hour, latency in ms.
      const double scale = objective == Objective::kCost ? context.hardware.price_per_hour / 3600.0 / 1000.0 : 1.0;
      for (size_t i = 0; i < lp.size(); ++i) {
        if (objective == Objective::kCost && !(context.hardware.price_per_hour > 0)) break;
        (*out)[i].expected = std::exp(lp[i].mean) * scale;
        (*out)[i].low = std::exp(lp[i].lo) * scale;
        (*out)[i].high = std::exp(lp[i].hi) * scale;
      }
    }
  }
  const Head head = HeadFor(objective);
  if (head == kE2e && !IsMissing(relative_sd)) {
    for (Prediction& p : *out) p.relative_log_sd = relative_sd;
  }
  if (head != kE2e && run_head(head)) {
    for (size_t i = 0; i < lp.size(); ++i) {
      (*out)[i].relative_log_sd = relative_sd;
      if (head == kThroughput) {  // stored as -log(throughput)
        (*out)[i].expected = std::exp(-lp[i].mean);
        (*out)[i].low = std::exp(-lp[i].hi);
        (*out)[i].high = std::exp(-lp[i].lo);
      } else {
        (*out)[i].expected = std::exp(lp[i].mean);
        (*out)[i].low = std::exp(lp[i].lo);
        (*out)[i].high = std::exp(lp[i].hi);
      }
    }
  }
  // Order from the ranking head of the objective (cost orders like e2e latency: the price is one constant per
  // context). No baseline or interval: only the order within this call means anything.
  if (const XgbLearner* ranker = rank_heads_[head].get(); ranker != nullptr) {
    std::vector<LogPrediction> order;
    if (ranker->Predict(task_x.data(), refs, &order).ok() && order.size() == strategies.size()) {
      for (size_t i = 0; i < order.size(); ++i) (*out)[i].rank_score = order[i].mean;
    }
  }
  if (run_head(kPeakMemory)) {
    for (size_t i = 0; i < lp.size(); ++i) (*out)[i].peak_memory_gb = std::exp(lp[i].mean);
  }
  for (auto& p : *out) p.failure_probability = failure_base_rate_;
  if (failure_classifier_ != nullptr) {
    const size_t tw = task_x.size(), sw = StrategyFeatureWidth();
    std::vector<float> x(strategies.size() * (tw + sw));
    for (size_t i = 0; i < strategies.size(); ++i) {
      std::copy_n(task_x.data(), tw, x.data() + i * (tw + sw));
      std::copy_n(refs[i].x, sw, x.data() + i * (tw + sw) + tw);
    }
    std::vector<float> prob;
    if (failure_classifier_->Predict(x.data(), strategies.size(), &prob).ok()) {
      for (size_t i = 0; i < prob.size(); ++i) (*out)[i].failure_probability = prob[i];
    }
  }
}

HoldoutMetrics MetaModel::Evaluate(const std::vector<RunRecord>& holdout) const {
  HoldoutMetrics m;
  double ape_sum = 0;
  uint64_t covered = 0, with_interval = 0;
  // Per context: strategy -> (observed latencies, predicted latency).
  struct Cell {
    double sum_ms = 0;
    double n = 0;
    double predicted_ms = kMissing;
  };
  absl::flat_hash_map<uint64_t, std::map<std::string, Cell>> contexts;
  std::vector<float> ctx;
  m.row_abs_log_error.assign(holdout.size(), kMissing);
  m.row_context.assign(holdout.size(), 0);
  for (size_t row = 0; row < holdout.size(); ++row) {
    const RunRecord& r = holdout[row];
    if (IsFailure(r.status)) continue;
    const double truth = r.metrics.e2e_latency_ms;
    if (IsMissing(truth) || !(truth > 0)) continue;
    Strategy s{r.strategy_id, {}, ""};
    std::vector<Prediction> p;
    PredictWith(r.context, {&s}, Objective::kE2eLatency, /*cached_encodings=*/false, &p);
    if (p.empty() || IsMissing(p[0].expected)) continue;
    ++m.rows;
    ape_sum += std::abs(p[0].expected - truth) / truth;
    if (!IsMissing(p[0].low) && !IsMissing(p[0].high)) {
      ++with_interval;
      if (truth >= p[0].low && truth <= p[0].high) ++covered;
    }
    ctx.clear();
    EncodeContext(r.context, &ctx);
    const uint64_t context_key = VectorKey(ctx.data(), ctx.size());
    if (p[0].expected > 0) m.row_abs_log_error[row] = std::abs(std::log(p[0].expected / truth));
    m.row_context[row] = context_key;
    Cell& c = contexts[context_key][r.strategy_id];
    c.sum_ms += truth;
    c.n += 1;
    c.predicted_ms = p[0].expected;
  }
  if (m.rows > 0) m.mape = ape_sum / m.rows;
  if (with_interval > 0) m.coverage80 = static_cast<double>(covered) / with_interval;
  uint64_t hits = 0;
  for (const auto& [key, cells] : contexts) {
    if (cells.size() < 2) continue;
    ++m.contexts;
    const std::string* best_obs = nullptr;
    const std::string* best_pred = nullptr;
    double bo = std::numeric_limits<double>::infinity(), bp = bo;
    for (const auto& [id, c] : cells) {
      if (c.sum_ms / c.n < bo) bo = c.sum_ms / c.n, best_obs = &id;
      if (c.predicted_ms < bp) bp = c.predicted_ms, best_pred = &id;
    }
    if (best_obs != nullptr && best_pred != nullptr && *best_obs == *best_pred) ++hits;
  }
  if (m.contexts > 0) m.top1 = static_cast<double>(hits) / m.contexts;
  return m;
}

PairedDifference PairedLogErrorDifference(const HoldoutMetrics& a, const HoldoutMetrics& b,
                                          const std::vector<bool>* only) {
  PairedDifference out;
  if (a.row_abs_log_error.size() != b.row_abs_log_error.size()) return out;
  if (only != nullptr && only->size() != a.row_abs_log_error.size()) return out;
  absl::flat_hash_map<uint64_t, std::pair<double, uint64_t>> by_context;  // sum of differences, runs
  double sum = 0;
  for (size_t i = 0; i < a.row_abs_log_error.size(); ++i) {
    if (only != nullptr && !(*only)[i]) continue;
    const double d = a.row_abs_log_error[i] - b.row_abs_log_error[i];
    if (std::isnan(d)) continue;
    sum += d;
    ++out.rows;
    auto& c = by_context[a.row_context[i]];
    c.first += d;
    ++c.second;
  }
  if (out.rows == 0) return out;
  out.mean = sum / static_cast<double>(out.rows);
  // Cluster-robust variance of a mean: sum over contexts of (their sum − their runs × mean)^2, over rows^2.
  double var = 0;
  for (const auto& [key, c] : by_context) {
    const double e = c.first - static_cast<double>(c.second) * out.mean;
    var += e * e;
  }
  const double n = static_cast<double>(out.rows);
  const double k = static_cast<double>(by_context.size());
  if (k > 1) var *= k / (k - 1);
  out.se = std::sqrt(var) / n;
  return out;
}

absl::StatusOr<std::string> MetaModel::Serialize() const {
  ByteWriter w;
  w.PutU32(kFeatureSchemaVersion);
  w.PutU32(roofline_baseline_ ? 1 : 0);
  w.PutU64(training_rows_);
  w.PutF64(coverage_);
  w.PutF64(failure_base_rate_);
  w.PutU32(static_cast<uint32_t>(catalog_.size()));
  for (const auto& [id, comps] : catalog_) {
    w.PutString(id);
    w.PutU32(static_cast<uint32_t>(comps.size()));
    for (const auto& [k, v] : comps) {
      w.PutString(k);
      w.PutString(v);
    }
  }
  for (const auto* names : {&known_models_, &known_accelerators_}) {
    w.PutU32(static_cast<uint32_t>(names->size()));
    for (const std::string& n : *names) w.PutString(n);
  }
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    w.PutF64(novel_model_[h].first);
    w.PutF64(novel_model_[h].second);
    w.PutF64(novel_accelerator_[h].first);
    w.PutF64(novel_accelerator_[h].second);
  }
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    if (heads_[h] == nullptr) {
      w.PutU32(0);
      continue;
    }
    auto bytes = heads_[h]->Serialize();
    if (!bytes.ok()) return bytes.status();
    w.PutU32(1);
    w.PutString(*bytes);
  }
  if (failure_classifier_ != nullptr) {
    auto bytes = failure_classifier_->Save();
    if (!bytes.ok()) return bytes.status();
    w.PutU32(1);
    w.PutString(*bytes);
  } else {
    w.PutU32(0);
  }
  // Format 3: vocabulary and ranking heads.
  w.PutU32(use_vocabulary_ ? 1 : 0);
  w.PutU32(static_cast<uint32_t>(vocabulary_.size()));
  for (const std::string& token : vocabulary_) w.PutString(token);
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    if (rank_heads_[h] == nullptr) {
      w.PutU32(0);
      continue;
    }
    auto bytes = rank_heads_[h]->Serialize();
    if (!bytes.ok()) return bytes.status();
    w.PutU32(1);
    w.PutString(*bytes);
  }
  // Format 5: the heads without baseline for unseen models / accelerators.
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    if (raw_heads_[h] == nullptr) {
      w.PutU32(0);
      continue;
    }
    auto bytes = raw_heads_[h]->Serialize();
    if (!bytes.ok()) return bytes.status();
    w.PutU32(raw_for_novel_[h]);
    w.PutF64(raw_novel_model_[h].first);
    w.PutF64(raw_novel_model_[h].second);
    w.PutF64(raw_novel_accelerator_[h].first);
    w.PutF64(raw_novel_accelerator_[h].second);
    w.PutString(*bytes);
  }
  return SealBlob(kBlobMagic, kBlobFormat, w.bytes());
}

absl::StatusOr<std::unique_ptr<MetaModel>> MetaModel::Deserialize(std::string_view blob, uint64_t version) {
  uint32_t format = 0;
  auto payload = OpenBlob(blob, kBlobMagic, kBlobFormat, &format);
  if (!payload.ok()) return payload.status();
  if (format < kOldestBlobFormat || format > kBlobFormat) {
    return absl::FailedPreconditionError(
        absl::StrCat("model blob: format ", format, " is not ", kOldestBlobFormat, "..", kBlobFormat));
  }
  ByteReader r(*payload);
  std::unique_ptr<MetaModel> mm(new MetaModel());
  mm->version_ = version;
  uint32_t schema = 0, n_catalog = 0, baseline = 0;
  auto malformed = [](const char* what) { return absl::DataLossError(absl::StrCat("model blob: malformed ", what)); };
  if (!r.GetU32(&schema) || !r.GetU32(&baseline) || baseline > 1 || !r.GetU64(&mm->training_rows_) ||
      !r.GetF64(&mm->coverage_) || !r.GetF64(&mm->failure_base_rate_) || !r.GetU32(&n_catalog)) {
    return malformed("header");
  }
  if (schema != kFeatureSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("model blob: feature schema ", schema, ", this build has ", kFeatureSchemaVersion));
  }
  mm->roofline_baseline_ = baseline == 1;
  for (uint32_t i = 0; i < n_catalog; ++i) {
    std::string id;
    uint32_t n = 0;
    if (!r.GetString(&id) || !r.GetU32(&n) || n > 4096) return malformed("catalog");
    auto& comps = mm->catalog_[id];
    for (uint32_t j = 0; j < n; ++j) {
      std::string k, v;
      if (!r.GetString(&k) || !r.GetString(&v)) return malformed("catalog");
      comps.emplace_back(std::move(k), std::move(v));
    }
  }
  for (auto* names : {&mm->known_models_, &mm->known_accelerators_}) {
    uint32_t n = 0;
    if (!r.GetU32(&n) || n > (1u << 24)) return malformed("known names");
    for (uint32_t i = 0; i < n; ++i) {
      std::string name;
      if (!r.GetString(&name)) return malformed("known names");
      names->insert(std::move(name));
    }
  }
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    if (!r.GetF64(&mm->novel_model_[h].first) || !r.GetF64(&mm->novel_model_[h].second) ||
        !r.GetF64(&mm->novel_accelerator_[h].first) || !r.GetF64(&mm->novel_accelerator_[h].second)) {
      return malformed("novelty intervals");
    }
  }
  bool any = false;
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    uint32_t present = 0;
    if (!r.GetU32(&present) || present > 1) return malformed("head");
    if (present == 0) continue;
    std::string bytes;
    if (!r.GetString(&bytes)) return malformed("head");
    auto learner = XgbLearner::Deserialize(bytes);
    if (!learner.ok()) return learner.status();
    mm->heads_[h] = std::move(*learner);
    any = any || h != kPeakMemory;
  }
  uint32_t has_classifier = 0;
  if (!r.GetU32(&has_classifier) || has_classifier > 1) return malformed("failure head");
  if (has_classifier == 1) {
    std::string bytes;
    if (!r.GetString(&bytes)) return malformed("failure head");
    auto b = XgbBooster::Load(bytes, ContextFeatureWidth() + StrategyFeatureWidth());
    if (!b.ok()) return b.status();
    mm->failure_classifier_ = std::move(*b);
  }
  if (format >= 3) {
    uint32_t use = 0, n = 0;
    if (!r.GetU32(&use) || use > 1 || !r.GetU32(&n) || n > (1u << 24)) return malformed("vocabulary");
    mm->use_vocabulary_ = use == 1;
    for (uint32_t i = 0; i < n; ++i) {
      std::string token;
      if (!r.GetString(&token)) return malformed("vocabulary");
      mm->vocabulary_.insert(std::move(token));
    }
    for (uint32_t h = 0; h < kNumHeads; ++h) {
      uint32_t present = 0;
      if (!r.GetU32(&present) || present > 1 || (present == 1 && h == kPeakMemory)) return malformed("ranking head");
      if (present == 0) continue;
      std::string bytes;
      if (!r.GetString(&bytes)) return malformed("ranking head");
      auto ranker = XgbLearner::Deserialize(bytes);
      if (!ranker.ok()) return ranker.status();
      mm->rank_heads_[h] = std::move(*ranker);
    }
  }
  for (uint32_t h = 0; h < kNumHeads; ++h) {
    mm->raw_novel_model_[h] = mm->raw_novel_accelerator_[h] = {kMissing, kMissing};
  }
  if (format >= 5) {
    for (uint32_t h = 0; h < kNumHeads; ++h) {
      uint32_t chosen = 0;
      if (!r.GetU32(&chosen) || chosen > (kRawForNovelModel | kRawForNovelAccelerator) ||
          (chosen != 0 && (h == kPeakMemory || mm->heads_[h] == nullptr))) {
        return malformed("head without baseline");
      }
      if (chosen == 0) continue;
      std::string bytes;
      if (!r.GetF64(&mm->raw_novel_model_[h].first) || !r.GetF64(&mm->raw_novel_model_[h].second) ||
          !r.GetF64(&mm->raw_novel_accelerator_[h].first) || !r.GetF64(&mm->raw_novel_accelerator_[h].second) ||
          !r.GetString(&bytes)) {
        return malformed("head without baseline");
      }
      auto learner = XgbLearner::Deserialize(bytes);
      if (!learner.ok()) return learner.status();
      mm->raw_heads_[h] = std::move(*learner);
      mm->raw_for_novel_[h] = chosen;
    }
  }
  if (!r.done()) return malformed("trailer");
  if (!any) return malformed("model: no objective head");
  return mm;
}

}  // namespace accelsel::model
