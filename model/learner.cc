// Learners: XGBoost regression / pairwise ranking with out-of-fold residual intervals.
#include "model/learner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "model/features.h"
#include "util/blob.h"

namespace accelsel::model {

using util::ByteReader;
using util::ByteWriter;

namespace {

void BuildMatrix(const Dataset& d, const std::vector<size_t>& rows, std::vector<float>* x, std::vector<float>* y) {
  const size_t cols = d.task_dim + d.strat_dim;
  x->resize(rows.size() * cols);
  y->resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const Dataset::Row& r = d.rows[rows[i]];
    float* dst = x->data() + i * cols;
    std::copy_n(d.task(r.task), d.task_dim, dst);
    std::copy_n(d.strat(r.strat), d.strat_dim, dst + d.task_dim);
    (*y)[i] = r.y;
  }
}

// Trains a booster on rows `rows` of `d` (every row when null) without building their whole feature matrix:
// XgbBooster::TrainFromBlocks asks for the rows block by block. Ranking: `groups` are the query groups of
// consecutive rows, and `negate_labels` turns log cost into relevance (higher is better).
absl::StatusOr<std::unique_ptr<XgbBooster>> TrainOnRows(const Dataset& d, const std::vector<size_t>* rows,
                                                        const XgbParams& params,
                                                        const std::vector<bool>& zero_is_missing,
                                                        const std::vector<unsigned>& groups = {},
                                                        bool negate_labels = false) {
  const size_t n = rows != nullptr ? rows->size() : d.rows.size();
  const size_t cols = d.task_dim + d.strat_dim;
  auto row = [&](size_t i) -> const Dataset::Row& { return d.rows[rows != nullptr ? (*rows)[i] : i]; };
  std::vector<float> y(n);
  for (size_t i = 0; i < n; ++i) y[i] = negate_labels ? -row(i).y : row(i).y;
  const XgbBooster::RowBlockFn fill = [&](size_t begin, size_t end, float* out) {
    for (size_t i = begin; i < end; ++i, out += cols) {
      const Dataset::Row& r = row(i);
      std::copy_n(d.task(r.task), d.task_dim, out);
      std::copy_n(d.strat(r.strat), d.strat_dim, out + d.task_dim);
    }
  };
  return XgbBooster::TrainFromBlocks(fill, n, cols, y, {}, params, zero_is_missing, groups);
}

// Rows of a sample of the tasks: every row when max_rows is 0 or not below the row count, else the rows of a
// hash-chosen share max_rows / rows of the tasks (whole tasks, so grouped folds stay grouped).
std::vector<size_t> SampleRowsByTask(const Dataset& d, size_t max_rows, uint64_t seed) {
  std::vector<size_t> out;
  if (max_rows == 0 || d.rows.size() <= max_rows) {
    out.resize(d.rows.size());
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  const double share = static_cast<double>(max_rows) / static_cast<double>(d.rows.size());
  const uint64_t threshold = static_cast<uint64_t>(share * 18446744073709551615.0);
  std::vector<bool> keep(d.num_tasks());
  for (uint32_t t = 0; t < keep.size(); ++t) keep[t] = StableHash(absl::StrCat(t), seed + 77) < threshold;
  out.reserve(max_rows + max_rows / 8);
  for (size_t i = 0; i < d.rows.size(); ++i) {
    if (keep[d.rows[i].task]) out.push_back(i);
  }
  return out;
}

}  // namespace

int InnerFold(uint32_t task, uint64_t seed, int folds) {
  return static_cast<int>(StableHash(absl::StrCat(task), seed) % static_cast<uint64_t>(folds));
}

std::vector<bool> IndicatorColumns(const Dataset& d) {
  std::vector<bool> out(d.task_dim + d.strat_dim, true);
  auto scan = [&out](const std::vector<float>& x, size_t dim, size_t offset) {
    if (dim == 0) return;
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i] != 0.0f && x[i] != 1.0f) out[offset + i % dim] = false;  // NaN fails both tests
    }
  };
  scan(d.f().task_x, d.task_dim, 0);
  scan(d.f().strat_x, d.strat_dim, d.task_dim);
  return out;
}

double Quantile(std::vector<double>* v, double q) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  const double pos = std::clamp(q, 0.0, 1.0) * (v->size() - 1);
  const size_t i = static_cast<size_t>(pos);
  if (i + 1 >= v->size()) return v->back();
  return (*v)[i] + (pos - i) * ((*v)[i + 1] - (*v)[i]);
}

namespace {

// The q-quantile of the standard normal, by bisection on its distribution function (only called once per fit).
double NormalQuantile(double q) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace

double RelativeResidualSd(const Dataset& d, const std::vector<float>& oof, double coverage) {
  // Mean residual and prediction of each (task, strategy) cell, so repeated runs of one strategy do not pass for a
  // comparison.
  struct Cell {
    double residual = 0;
    double predicted = 0;
    int n = 0;
  };
  std::map<std::pair<uint32_t, uint32_t>, Cell> cells;
  for (size_t i = 0; i < d.rows.size() && i < oof.size(); ++i) {
    if (std::isnan(oof[i])) continue;
    Cell& c = cells[{d.rows[i].task, d.rows[i].strat}];
    c.residual += double{d.rows[i].y} - oof[i];
    c.predicted += oof[i];
    ++c.n;
  }
  std::vector<double> relative;
  std::vector<std::pair<double, double>> context;  // (predicted, residual) of one task's cells
  for (auto it = cells.begin(); it != cells.end();) {
    context.clear();
    auto end = it;
    for (; end != cells.end() && end->first.first == it->first.first; ++end) {
      context.emplace_back(end->second.predicted / end->second.n, end->second.residual / end->second.n);
    }
    it = end;
    if (context.size() < 2) continue;
    // The cells that compete for first place: the best-predicted quarter, at least two.
    std::sort(context.begin(), context.end());
    const size_t k = std::max<size_t>(2, (context.size() + 3) / 4);
    double mean = 0;
    for (size_t j = 0; j < k; ++j) mean += context[j].second / static_cast<double>(k);
    // A cell's deviation from the mean of k cells has variance (1 - 1/k) of the cell's own.
    const double unbias = std::sqrt(k / (k - 1.0));
    for (size_t j = 0; j < k; ++j) relative.push_back((context[j].second - mean) * unbias);
  }
  if (relative.size() < 10) return std::numeric_limits<double>::quiet_NaN();
  const double tail = (1.0 - coverage) / 2.0;
  const double lo = Quantile(&relative, tail), hi = Quantile(&relative, 1.0 - tail);
  return (hi - lo) / (2 * NormalQuantile(1.0 - tail));
}

// --- XgbLearner -------------------------------------------------------------------------------------------

std::string XgbLearner::name() const {
  return options_.mode == XgbLearnerOptions::Mode::kPairwise ? "xgb_rank" : "xgb_reg";
}

absl::Status XgbLearner::Fit(const Dataset& d) {
  task_dim_ = d.task_dim;
  strat_dim_ = d.strat_dim;
  if (d.rows.empty()) return absl::InvalidArgumentError("xgb: no training rows");
  std::vector<size_t> all(d.rows.size());
  std::iota(all.begin(), all.end(), 0);
  XgbParams params = options_.params;
  if (options_.mode == XgbLearnerOptions::Mode::kPairwise) {
    // Within the row budget, whole tasks (a task's rows are one ranking group).
    if (options_.max_fit_rows > 0 && d.rows.size() > options_.max_fit_rows) {
      all = SampleRowsByTask(d, options_.max_fit_rows, params.seed + 1000);
    }
    // Rows of one task must be consecutive; relevance = -log cost (higher is better).
    std::stable_sort(all.begin(), all.end(), [&](size_t a, size_t b) { return d.rows[a].task < d.rows[b].task; });
    std::vector<unsigned> groups;
    for (size_t i = 0; i < all.size(); ++i) {
      if (i == 0 || d.rows[all[i]].task != d.rows[all[i - 1]].task) groups.push_back(0);
      ++groups.back();
    }
    params.objective = "rank:pairwise";
    // Block by block like the regression (no whole float matrix, no XGBoost copy of it).
    auto b = TrainOnRows(d, &all, params, {}, groups, /*negate_labels=*/true);
    if (!b.ok()) return b.status();
    booster_ = std::move(*b);
    has_interval_ = false;
    return absl::OkStatus();
  }
  const std::vector<size_t> fit_rows = SampleRowsByTask(d, options_.max_fit_rows, params.seed + 1000);
  const std::vector<bool> indicators = options_.sparse_indicators ? IndicatorColumns(d) : std::vector<bool>();
  auto b = TrainOnRows(d, fit_rows.size() == d.rows.size() ? nullptr : &fit_rows, params, indicators);
  if (!b.ok()) return b.status();
  booster_ = std::move(*b);
  has_interval_ = false;
  relative_sd_ = std::numeric_limits<double>::quiet_NaN();
  oof_.assign(d.rows.size(), std::nanf(""));
  const int folds = options_.interval_folds;
  if (folds >= 2 && d.num_tasks() >= static_cast<size_t>(folds)) {
    const std::vector<size_t> calibration = SampleRowsByTask(d, options_.calibration_max_rows, params.seed);
    std::vector<double> residuals;
    residuals.reserve(calibration.size());
    for (int f = 0; f < folds; ++f) {
      std::vector<size_t> train, test;
      for (size_t i : calibration) {
        const bool held = InnerFold(d.rows[i].task, params.seed, folds) == f;
        (held ? test : train).push_back(i);
      }
      if (train.empty() || test.empty()) continue;
      std::vector<float> tx, ty, pred;
      XgbParams fp = params;
      fp.seed = params.seed + 1 + f;
      auto fb = TrainOnRows(d, &train, fp, indicators);
      if (!fb.ok()) return fb.status();
      BuildMatrix(d, test, &tx, &ty);
      if (auto s = (*fb)->Predict(tx.data(), test.size(), &pred); !s.ok()) return s;
      for (size_t i = 0; i < test.size(); ++i) {
        residuals.push_back(double{ty[i]} - pred[i]);
        oof_[test[i]] = pred[i];
      }
    }
    if (residuals.size() >= 10) {
      const double tail = (1.0 - options_.coverage) / 2.0;
      residual_lo_ = Quantile(&residuals, tail);
      residual_hi_ = Quantile(&residuals, 1.0 - tail);
      has_interval_ = true;
      relative_sd_ = RelativeResidualSd(d, oof_, options_.coverage);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<double, double>> XgbLearner::GroupedResidualQuantiles(const Dataset& d,
                                                                               const std::vector<uint64_t>& task_group,
                                                                               int folds) const {
  auto g = ScoreGroupedResiduals(d, task_group, folds);
  if (!g.ok()) return g.status();
  return std::make_pair(g->lo, g->hi);
}

absl::StatusOr<XgbLearner::GroupedResiduals> XgbLearner::ScoreGroupedResiduals(const Dataset& d,
                                                                               const std::vector<uint64_t>& task_group,
                                                                               int folds) const {
  if (folds < 2 || task_group.size() != d.num_tasks()) return absl::NotFoundError("no groups");
  const std::vector<size_t> calibration = SampleRowsByTask(d, options_.calibration_max_rows, options_.params.seed);
  const std::vector<bool> indicators = options_.sparse_indicators ? IndicatorColumns(d) : std::vector<bool>();
  std::vector<double> residuals;
  int used = 0;
  for (int f = 0; f < folds; ++f) {
    std::vector<size_t> train, test;
    for (size_t i : calibration) {
      (static_cast<int>(task_group[d.rows[i].task] % folds) == f ? test : train).push_back(i);
    }
    if (train.empty() || test.empty()) continue;
    ++used;
    std::vector<float> tx, ty, pred;
    XgbParams fp = options_.params;
    fp.seed = options_.params.seed + 101 + f;
    auto fb = TrainOnRows(d, &train, fp, indicators);
    if (!fb.ok()) return fb.status();
    BuildMatrix(d, test, &tx, &ty);
    if (auto s = (*fb)->Predict(tx.data(), test.size(), &pred); !s.ok()) return s;
    for (size_t i = 0; i < test.size(); ++i) residuals.push_back(double{ty[i]} - pred[i]);
  }
  if (used < 2 || residuals.size() < 10) return absl::NotFoundError("groups do not allow two folds");
  GroupedResiduals out;
  double sum = 0;
  for (double r : residuals) sum += std::abs(r);
  out.mean_abs = sum / static_cast<double>(residuals.size());
  const double tail = (1.0 - options_.coverage) / 2.0;
  out.lo = Quantile(&residuals, tail);
  out.hi = Quantile(&residuals, 1.0 - tail);
  return out;
}

absl::Status XgbLearner::Predict(const float* task_x, const std::vector<CandidateRef>& candidates,
                                 std::vector<LogPrediction>* out) const {
  out->clear();
  if (booster_ == nullptr) return absl::FailedPreconditionError("xgb: not fitted");
  const size_t cols = task_dim_ + strat_dim_;
  std::vector<float> x(candidates.size() * cols);
  for (size_t i = 0; i < candidates.size(); ++i) {
    std::copy_n(task_x, task_dim_, x.data() + i * cols);
    std::copy_n(candidates[i].x, strat_dim_, x.data() + i * cols + task_dim_);
  }
  std::vector<float> pred;
  if (auto s = booster_->Predict(x.data(), candidates.size(), &pred); !s.ok()) return s;
  const bool rank = options_.mode == XgbLearnerOptions::Mode::kPairwise;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out->resize(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const double m = rank ? -pred[i] : pred[i];
    (*out)[i] = {m, has_interval_ ? m + residual_lo_ : nan, has_interval_ ? m + residual_hi_ : nan};
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> XgbLearner::Serialize() const {
  if (booster_ == nullptr) return absl::FailedPreconditionError("xgb: not fitted");
  auto bytes = booster_->Save();
  if (!bytes.ok()) return bytes.status();
  ByteWriter w;
  w.PutU32(options_.mode == XgbLearnerOptions::Mode::kPairwise ? 1 : 0);
  w.PutU64(task_dim_);
  w.PutU64(strat_dim_);
  w.PutU32(has_interval_ ? 1 : 0);
  w.PutF64(residual_lo_);
  w.PutF64(residual_hi_);
  w.PutF64(options_.coverage);
  w.PutString(*bytes);
  w.PutF64(relative_sd_);
  return w.bytes();
}

absl::StatusOr<std::unique_ptr<XgbLearner>> XgbLearner::Deserialize(std::string_view bytes) {
  ByteReader r(bytes);
  uint32_t mode = 0, has_interval = 0;
  uint64_t task_dim = 0, strat_dim = 0;
  double lo = 0, hi = 0, coverage = 0;
  std::string booster;
  if (!r.GetU32(&mode) || !r.GetU64(&task_dim) || !r.GetU64(&strat_dim) || !r.GetU32(&has_interval) || !r.GetF64(&lo) ||
      !r.GetF64(&hi) || !r.GetF64(&coverage) || !r.GetString(&booster) || mode > 1 || task_dim + strat_dim == 0 ||
      task_dim + strat_dim > (1u << 20)) {
    return absl::DataLossError("xgb learner: malformed section");
  }
  // Written since blob format 4; an older section ends after the booster.
  double relative_sd = std::numeric_limits<double>::quiet_NaN();
  if (!r.done() && (!r.GetF64(&relative_sd) || !r.done())) return absl::DataLossError("xgb learner: malformed section");
  XgbLearnerOptions o;
  o.mode = mode == 1 ? XgbLearnerOptions::Mode::kPairwise : XgbLearnerOptions::Mode::kRegression;
  o.coverage = coverage;
  auto l = std::make_unique<XgbLearner>(o);
  l->task_dim_ = task_dim;
  l->strat_dim_ = strat_dim;
  l->has_interval_ = has_interval != 0;
  l->residual_lo_ = lo;
  l->residual_hi_ = hi;
  l->relative_sd_ = relative_sd;
  auto b = XgbBooster::Load(booster, task_dim + strat_dim);
  if (!b.ok()) return b.status();
  l->booster_ = std::move(*b);
  return l;
}

}  // namespace accelsel::model
