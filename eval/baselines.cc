// kNN, SBS and the evaluator's AutoLearner (see baselines.h).
#include "eval/baselines.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace accelsel::eval {
namespace {

using model::IndicatorColumns;
using model::InnerFold;

constexpr double kUnknownScore = 1e30;

// Lookup in a sorted (key, score) vector.
double Lookup(const std::vector<std::pair<uint64_t, double>>& v, uint64_t key, double missing) {
  auto it = std::lower_bound(v.begin(), v.end(), std::make_pair(key, -std::numeric_limits<double>::infinity()));
  return it != v.end() && it->first == key ? it->second : missing;
}

// Average rank (0-based; ties share the mean of their positions) of each of `v`'s values, lower value = lower rank.
std::vector<double> AverageRanks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && v[idx[j]] == v[idx[i]]) ++j;
    for (size_t k = i; k < j; ++k) rank[idx[k]] = 0.5 * (i + j - 1);
    i = j;
  }
  return rank;
}

// Rank-average ensemble of per-candidate scores of one task (each inner vector is one learner's scores, lower =
// better): the sum of each learner's average ranks, so that no learner dominates by the scale of its scores
// (kNN scores a strategy no neighbour ran 1e6 + ...). Ties go to the first learner's order.
std::vector<double> RankAverage(const std::vector<std::vector<double>>& scores) {
  const size_t n = scores.empty() ? 0 : scores[0].size();
  std::vector<double> out(n, 0.0);
  for (const auto& s : scores) {
    const std::vector<double> r = AverageRanks(s);
    for (size_t i = 0; i < n; ++i) out[i] += r[i];
  }
  const std::vector<double> tie = AverageRanks(scores[0]);
  for (size_t i = 0; i < n; ++i) out[i] += 1e-3 * tie[i] / (n + 1.0);
  return out;
}

}  // namespace

// --- AutoLearner ------------------------------------------------------------------------------------------

Dataset SubsetByTasks(const Dataset& d, const std::vector<bool>& keep, std::vector<uint32_t>* old_task) {
  Dataset out;
  out.task_dim = d.task_dim;
  out.strat_dim = d.strat_dim;
  out.strat_x = d.f().strat_x;
  out.strat_key = d.f().strat_key;
  std::vector<int64_t> new_index(d.num_tasks(), -1);
  old_task->clear();
  for (uint32_t t = 0; t < d.num_tasks(); ++t) {
    if (!keep[t]) continue;
    new_index[t] = static_cast<int64_t>(old_task->size());
    old_task->push_back(t);
    out.task_x.insert(out.task_x.end(), d.task(t), d.task(t) + d.task_dim);
  }
  for (const auto& r : d.rows) {
    if (new_index[r.task] >= 0) out.rows.push_back({static_cast<uint32_t>(new_index[r.task]), r.strat, r.y});
  }
  return out;
}

std::unique_ptr<Learner> AutoLearner::Make(const std::string& name) const {
  if (name == "xgb_rank") {
    XgbLearnerOptions o = options_;
    o.mode = XgbLearnerOptions::Mode::kPairwise;
    o.interval_folds = 0;
    return std::make_unique<XgbLearner>(o);
  }
  if (name == "knn") return std::make_unique<KnnLearner>(knn_k_, aggregate_);
  return std::make_unique<SbsLearner>(aggregate_);
}

absl::Status AutoLearner::Fit(const Dataset& d) {
  if (auto s = xgb_.Fit(d); !s.ok()) return s;
  ranker_.reset();
  members_.clear();
  chosen_ = "xgb_reg";
  inner_costs_.clear();
  const std::vector<float>& oof = xgb_.oof_predictions();
  const int folds = options_.interval_folds;
  const uint64_t seed = options_.params.seed;
  if (folds < 2 || oof.size() != d.rows.size()) return absl::OkStatus();
  std::vector<std::vector<size_t>> rows_of(d.num_tasks());
  for (size_t i = 0; i < d.rows.size(); ++i) rows_of[d.rows[i].task].push_back(i);
  // Cost of choosing row i of its task: raw cost or log regret.
  auto cost = [&](size_t i) {
    double best = d.rows[i].y;
    for (size_t j : rows_of[d.rows[i].task]) best = std::min(best, double{d.rows[j].y});
    return AggregateCost(aggregate_, d.rows[i].y, best);
  };
  // Out-of-fold score of every row, per candidate learner.
  const std::vector<std::string> names = {"xgb_reg", "xgb_rank", "knn", "sbs", "ens"};
  std::vector<std::vector<double>> score(names.size() - 1, std::vector<double>(d.rows.size(), std::nan("")));
  for (size_t i = 0; i < d.rows.size(); ++i) score[0][i] = oof[i];
  for (int f = 0; f < folds; ++f) {
    std::vector<bool> keep(d.num_tasks());
    for (uint32_t t = 0; t < d.num_tasks(); ++t) keep[t] = InnerFold(t, seed, folds) != f;
    std::vector<uint32_t> old_task;
    const Dataset train = SubsetByTasks(d, keep, &old_task);
    if (train.rows.empty()) continue;
    for (size_t n = 1; n + 1 < names.size(); ++n) {
      std::unique_ptr<Learner> l = Make(names[n]);
      if (auto s = l->Fit(train); !s.ok()) return s;
      std::vector<CandidateRef> refs;
      std::vector<LogPrediction> lp;
      for (uint32_t t = 0; t < d.num_tasks(); ++t) {
        if (keep[t] || rows_of[t].empty()) continue;
        refs.clear();
        for (size_t i : rows_of[t]) refs.push_back({d.f().strat_key[d.rows[i].strat], d.strat(d.rows[i].strat)});
        if (auto s = l->Predict(d.task(t), refs, &lp); !s.ok()) return s;
        for (size_t k = 0; k < lp.size(); ++k) score[n][rows_of[t][k]] = lp[k].rank_score();
      }
    }
  }
  // "ens": rank average of the regression, the pairwise ranker and kNN, from the same out-of-fold scores.
  {
    std::vector<double> ens(d.rows.size(), std::nan(""));
    std::vector<std::vector<double>> member(kEnsembleMembers);
    for (const auto& rows : rows_of) {
      bool complete = !rows.empty();
      for (size_t m = 0; m < kEnsembleMembers && complete; ++m) {
        member[m].clear();
        for (size_t i : rows) {
          if (std::isnan(score[m][i])) complete = false;
          member[m].push_back(score[m][i]);
        }
      }
      if (!complete) continue;
      const std::vector<double> e = RankAverage(member);
      for (size_t k = 0; k < rows.size(); ++k) ens[rows[k]] = e[k];
    }
    score.push_back(std::move(ens));
  }
  size_t best_n = 0;
  double best_cost = std::numeric_limits<double>::infinity();
  for (size_t n = 0; n < names.size(); ++n) {
    double total = 0;
    uint64_t tasks = 0;
    for (const auto& rows : rows_of) {
      if (rows.size() < 2 || std::isnan(score[n][rows[0]])) continue;
      size_t pick = rows[0];
      for (size_t i : rows) {
        if (score[n][i] < score[n][pick]) pick = i;
      }
      total += cost(pick);
      ++tasks;
    }
    const double mean = tasks > 0 ? total / tasks : std::numeric_limits<double>::infinity();
    inner_costs_.emplace_back(names[n], mean);
    if (mean < best_cost) {  // ties keep the earlier (regression first)
      best_cost = mean;
      best_n = n;
    }
  }
  chosen_ = names[best_n];
  if (chosen_ == "ens") {
    for (const char* member : {"xgb_rank", "knn"}) {
      members_.push_back(Make(member));
      if (auto s = members_.back()->Fit(d); !s.ok()) return s;
    }
  } else if (best_n != 0) {
    ranker_ = Make(chosen_);
    if (auto s = ranker_->Fit(d); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status AutoLearner::Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                                  std::vector<LogPrediction>* out) const {
  if (auto s = xgb_.Predict(task_x, candidates, out); !s.ok()) return s;
  if (!members_.empty()) {
    std::vector<std::vector<double>> scores(1);
    for (const LogPrediction& p : *out) scores[0].push_back(p.rank_score());
    std::vector<LogPrediction> r;
    for (const auto& m : members_) {
      if (auto s = m->Predict(task_x, candidates, &r); !s.ok()) return s;
      scores.emplace_back();
      for (const LogPrediction& p : r) scores.back().push_back(p.rank_score());
    }
    const std::vector<double> e = RankAverage(scores);
    for (size_t i = 0; i < out->size(); ++i) (*out)[i].score = e[i];
    return absl::OkStatus();
  }
  if (ranker_ == nullptr) return absl::OkStatus();
  std::vector<LogPrediction> r;
  if (auto s = ranker_->Predict(task_x, candidates, &r); !s.ok()) return s;
  for (size_t i = 0; i < out->size() && i < r.size(); ++i) (*out)[i].score = r[i].rank_score();
  return absl::OkStatus();
}

// --- SBS and kNN ------------------------------------------------------------------------------------------

double AggregateCost(Aggregate aggregate, double y, double best_y) {
  switch (aggregate) {
    case Aggregate::kLogRegret: return y - best_y;
    case Aggregate::kRawMean: return std::exp(y);
    case Aggregate::kMean: return y;
  }
  return y;
}

XgbLearnerOptions PlainXgbOptions(uint64_t seed) {
  XgbLearnerOptions o;
  o.mode = XgbLearnerOptions::Mode::kRegression;
  o.interval_folds = 0;
  model::XgbParams& p = o.params;
  p.objective = "reg:squarederror";
  p.num_rounds = 100;
  p.max_depth = 6;
  p.eta = 0.3;
  p.subsample = 1;
  p.colsample_bytree = 1;
  p.colsample_bynode = 1;
  p.min_child_weight = 1;
  p.lambda = 1;
  p.max_bin = 256;
  p.seed = seed;
  return o;
}

std::vector<std::pair<uint64_t, double>> AggregateByStrategy(const Dataset& d, Aggregate aggregate) {
  std::vector<double> best(d.num_tasks(), std::numeric_limits<double>::infinity());
  for (const auto& r : d.rows) best[r.task] = std::min(best[r.task], double{r.y});
  absl::flat_hash_map<uint64_t, std::pair<double, double>> sum;  // key -> (sum, count)
  for (const auto& r : d.rows) {
    const double v = AggregateCost(aggregate, r.y, best[r.task]);
    auto& s = sum[d.f().strat_key[r.strat]];
    s.first += v;
    s.second += 1;
  }
  std::vector<std::pair<uint64_t, double>> out;
  for (const auto& [k, s] : sum) out.emplace_back(k, s.first / s.second);
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status SbsLearner::Fit(const Dataset& d) {
  scores_ = AggregateByStrategy(d, aggregate_);
  return absl::OkStatus();
}

absl::Status SbsLearner::Predict(const float*, const std::vector<CandidateRef>& candidates,
                                 std::vector<LogPrediction>* out) const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out->assign(candidates.size(), {0, nan, nan});
  for (size_t i = 0; i < candidates.size(); ++i) (*out)[i].mean = Lookup(scores_, candidates[i].key, kUnknownScore);
  return absl::OkStatus();
}

absl::Status KnnLearner::Fit(const Dataset& d) {
  dim_ = d.task_dim;
  const size_t n = d.num_tasks();
  if (n == 0) return absl::InvalidArgumentError("knn: no tasks");
  mean_.assign(dim_, 0);
  inv_std_.assign(dim_, 0);
  for (size_t j = 0; j < dim_; ++j) {
    double s = 0, s2 = 0, c = 0;
    for (size_t t = 0; t < n; ++t) {
      const float v = d.task(t)[j];
      if (std::isnan(v)) continue;
      s += v;
      s2 += double{v} * v;
      c += 1;
    }
    if (c < 1) continue;
    mean_[j] = s / c;
    const double var = s2 / c - mean_[j] * mean_[j];
    inv_std_[j] = var > 1e-12 ? 1.0 / std::sqrt(var) : 0.0;  // constant columns do not count
  }
  z_.resize(n * dim_);
  for (size_t t = 0; t < n; ++t) {
    for (size_t j = 0; j < dim_; ++j) {
      const float v = d.task(t)[j];
      z_[t * dim_ + j] = std::isnan(v) ? 0.0f : static_cast<float>((v - mean_[j]) * inv_std_[j]);
    }
  }
  std::vector<double> best(n, std::numeric_limits<double>::infinity());
  for (const auto& r : d.rows) best[r.task] = std::min(best[r.task], double{r.y});
  task_scores_.assign(n, {});
  for (const auto& r : d.rows) {
    const double v = AggregateCost(aggregate_, r.y, best[r.task]);
    task_scores_[r.task].emplace_back(d.f().strat_key[r.strat], v);
  }
  for (auto& v : task_scores_) std::sort(v.begin(), v.end());
  fallback_ = AggregateByStrategy(d, aggregate_);
  return absl::OkStatus();
}

absl::Status KnnLearner::Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                                 std::vector<LogPrediction>* out) const {
  const size_t n = task_scores_.size();
  std::vector<float> z(dim_);
  for (size_t j = 0; j < dim_; ++j) {
    z[j] = std::isnan(task_x[j]) ? 0.0f : static_cast<float>((task_x[j] - mean_[j]) * inv_std_[j]);
  }
  std::vector<std::pair<double, uint32_t>> dist(n);
  for (size_t t = 0; t < n; ++t) {
    double s = 0;
    const float* row = z_.data() + t * dim_;
    for (size_t j = 0; j < dim_; ++j) {
      const double diff = row[j] - z[j];
      s += diff * diff;
    }
    dist[t] = {s, static_cast<uint32_t>(t)};
  }
  const size_t k = std::min<size_t>(k_, n);
  std::partial_sort(dist.begin(), dist.begin() + k, dist.end());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out->assign(candidates.size(), {0, nan, nan});
  for (size_t i = 0; i < candidates.size(); ++i) {
    double s = 0, c = 0;
    for (size_t m = 0; m < k; ++m) {
      const double v = Lookup(task_scores_[dist[m].second], candidates[i].key, nan);
      if (std::isnan(v)) continue;
      s += v;
      c += 1;
    }
    // A strategy none of the neighbours ran is ranked by its global score, after those the neighbours vouch for.
    (*out)[i].mean = c > 0 ? s / c : 1e6 + Lookup(fallback_, candidates[i].key, kUnknownScore);
  }
  return absl::OkStatus();
}

}  // namespace accelsel::eval
