// Model versions: train -> evaluate on held-out contexts -> persist -> promote (or not) -> publish by swap.
#include "server/model_manager.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "model/context_key.h"
#include "model/meta_model.h"
#include "model/observed_stats.h"
#include "proto/convert.h"
#include "server/off_policy_replay.h"
#include "util/log.h"

namespace accelsel::server {
namespace {

constexpr char kServingKey[] = "serving_version";
constexpr char kPinnedKey[] = "pinned";
constexpr char kNextVersionKey[] = "next_model_version";

// Held-out share of task contexts. Contexts (not runs) are held out so that top-1 agreement measures ranking on
// tasks the candidate has never seen.
constexpr uint64_t kHoldoutPercent = 20;

void FillEvaluation(const model::HoldoutMetrics& m, v1::ModelEvaluation* e) {
  auto finite = [](double v) { return std::isfinite(v) ? v : 0.0; };
  e->set_holdout_mape(finite(m.mape));
  e->set_holdout_top1(finite(m.top1));
  e->set_holdout_coverage80(finite(m.coverage80));
  e->set_holdout_rows(m.rows);
}

// The log lines of a retrain's end: its figures, then the promotion or rejection and why (docs/OPERATIONS.md, "Logs").
void LogRetrainOutcome(std::string_view trigger, uint64_t serving_before, absl::Duration took,
                       const absl::StatusOr<v1::ModelVersionInfo>& info) {
  if (!info.ok()) {
    if (absl::IsCancelled(info.status())) {
      log::Info("retrain_cancelled", {{"trigger", trigger}, {"reason", info.status().message()}});
    } else {
      // Too few runs to train on (a young network) is expected and says so; anything else is an error to look at.
      log::Write(absl::IsFailedPrecondition(info.status()) ? log::Level::kWarn : log::Level::kError, "retrain_failed",
                 {{"trigger", trigger},
                  {"code", absl::StatusCodeToString(info.status().code())},
                  {"error", info.status().message()}});
    }
    return;
  }
  const v1::ModelEvaluation& e = info->evaluation();
  log::Info("retrain_end", {{"trigger", trigger},
                            {"version", info->version()},
                            {"learner", info->learner()},
                            {"training_rows", info->training_rows()},
                            {"holdout_rows", e.holdout_rows()},
                            {"seconds", absl::ToDoubleSeconds(took)},
                            {"training_seconds", info->training_seconds()},
                            {"holdout_mape", e.holdout_mape()},
                            {"holdout_top1", e.holdout_top1()},
                            {"holdout_coverage80", e.holdout_coverage80()},
                            {"serving_version", serving_before},
                            {"serving_mape", e.baseline_mape()},
                            {"serving_top1", e.baseline_top1()},
                            {"promoted", info->promoted()},
                            {"note", info->note()}});
  if (info->promoted()) {
    log::Info("promotion",
              {{"version", info->version()}, {"previous_version", serving_before}, {"note", info->note()}});
  } else {
    log::Warn("rejection", {{"version", info->version()}, {"serving_version", serving_before}, {"note", info->note()}});
  }
}

}  // namespace

bool ModelManager::InHoldout(const model::TaskContext& context) {
  // The stable key of the split (model/context_key.h): the same across restarts and releases, so that a model is
  // never evaluated on contexts it was trained on.
  return InHoldoutKey(model::HoldoutContextKey(context));
}

bool ModelManager::InHoldoutKey(uint64_t holdout_key) { return (holdout_key >> 17) % 100 < kHoldoutPercent; }

std::vector<bool> NewestQuarter(const std::vector<model::RunRecord>& holdout) {
  std::vector<int64_t> times;
  times.reserve(holdout.size());
  for (const auto& r : holdout) times.push_back(r.time_unix_ms);
  std::vector<bool> out(holdout.size(), false);
  if (times.empty()) return out;
  std::vector<int64_t> sorted = times;
  const size_t q = sorted.size() * 3 / 4;
  std::nth_element(sorted.begin(), sorted.begin() + q, sorted.end());
  for (size_t i = 0; i < times.size(); ++i) out[i] = times[i] >= sorted[q];
  return out;
}

PromotionDecision DecidePromotion(const model::HoldoutMetrics& cand, const model::HoldoutMetrics& cur,
                                  const std::vector<bool>& newest) {
  // The candidate is held back only when its error is worse run by run on the same held-out runs, by more than the
  // tolerance and than two standard errors: a MAPE ratio is ruled by the few runs one model over-predicts many
  // times over, so it held better-informed candidates behind a lucky incumbent.
  const model::PairedDifference d = model::PairedLogErrorDifference(cand, cur);
  const bool error_ok = !(d.rows > 0 && d.mean > std::max(kLogErrorTolerance, 2 * d.se));
  // A sudden jump on the newest held-out runs (where a poisoner's latest reports land) holds it back even when the
  // whole held-out set dilutes it; both are scored on the same runs, so a drift that worsens both does not.
  const model::PairedDifference dr = model::PairedLogErrorDifference(cand, cur, &newest);
  const bool recent_ok = !(dr.rows >= kMinRecentRuns && dr.mean > std::max(kLogErrorTolerance, 2 * dr.se));
  // Top-1 over a few held-out contexts is noisy (near-ties flip): allow two standard errors of the serving model's
  // top-1 estimate, and at least kTop1Tolerance.
  const double n = std::max<double>(1.0, static_cast<double>(cur.contexts));
  // Laplace-smoothed proportion, so a perfect score on few contexts does not claim zero uncertainty.
  const double p = std::isfinite(cur.top1) ? (cur.top1 * n + 1) / (n + 2) : 0.5;
  const double se = std::sqrt(p * (1 - p) / n);
  const double top1_tolerance = std::max(kTop1Tolerance, 2 * se);
  const bool top1_ok = !std::isfinite(cur.top1) || !std::isfinite(cand.top1) || cand.top1 >= cur.top1 - top1_tolerance;
  PromotionDecision out;
  out.promote = error_ok && recent_ok && top1_ok;
  out.note = absl::StrFormat(
      "holdout |log error| %+.4f (se %.4f) against serving on the same %u runs (newest quarter %+.4f, se %.4f, %u "
      "runs), MAPE %.4f vs %.4f, top-1 %.3f vs %.3f",
      d.mean, d.se, static_cast<unsigned>(d.rows), dr.mean, dr.se, static_cast<unsigned>(dr.rows), cand.mape, cur.mape,
      cand.top1, cur.top1);
  if (!error_ok) out.note += "; held back: higher error on the held-out runs";
  if (!recent_ok) out.note += "; held back: a sudden jump of error on the newest held-out runs";
  if (!top1_ok) out.note += "; held back: lower held-out top-1";
  return out;
}

PromotionDecision DecideCandidate(const model::HoldoutMetrics& cand, const model::HoldoutMetrics* serving, bool pinned,
                                  const std::vector<bool>& newest, const OffPolicyInput& off_policy) {
  const bool scored = std::isfinite(cand.mape) && cand.rows > 0;
  PromotionDecision out;
  out.promote = scored;
  if (serving == nullptr) {
    out.note = absl::StrFormat("first model; holdout MAPE %.4f, top-1 %.3f", cand.mape, cand.top1);
  } else if (scored && std::isfinite(serving->mape)) {
    out = DecidePromotion(cand, *serving, newest);
  }
  if (!scored) out.note = "no held-out runs to evaluate on; not promoted";
  if (scored && serving != nullptr && off_policy.comparison != nullptr) {
    const model::PolicyComparison& c = *off_policy.comparison;
    const model::OffPolicyVerdict verdict =
        off_policy.min_ess > 0 ? model::JudgeCandidate(c, off_policy.min_ess) : model::OffPolicyVerdict::kNotEnoughData;
    const std::string figures = absl::StrFormat(
        "off-policy on %d logged decisions: doubly robust difference %+.4f [%+.4f, %+.4f], ESS %.0f", c.candidate.rows,
        c.dr_difference.value, c.dr_difference.low, c.dr_difference.high, c.candidate.ess);
    switch (verdict) {
      case model::OffPolicyVerdict::kWorse:
        out.promote = false;
        out.used_off_policy = true;
        out.note = absl::StrCat(figures, ": worse on logged traffic; held-out rule: ", out.note);
        break;
      case model::OffPolicyVerdict::kBetter:
        out.promote = true;
        out.used_off_policy = true;
        out.note = absl::StrCat(figures, ": better on logged traffic; held-out rule: ", out.note);
        break;
      case model::OffPolicyVerdict::kNotWorse:
        out.used_off_policy = true;
        out.note = absl::StrCat(out.note, "; ", figures, ": not distinguishable, the held-out rule decides");
        break;
      case model::OffPolicyVerdict::kNotEnoughData:
        out.note = absl::StrCat(out.note, "; ", figures, ": below --ope_min_ess ", off_policy.min_ess, ", not used");
        break;
    }
  }
  if (pinned) {
    out.promote = false;
    out.note += "; a version is pinned (automatic promotion is off until `model pin 0`)";
  }
  out.note = absl::StrCat(out.promote ? "promoted: " : "not promoted: ", out.note);
  return out;
}

ModelManager::ModelManager(storage::TelemetryStore* store, Metrics* metrics, const ServerOptions& options,
                           Executor* executor, const model::ObservedStats* stats)
    : store_(store), stats_(stats), metrics_(metrics), executor_(executor), options_(options) {}

ModelManager::~ModelManager() { Stop(); }

absl::StatusOr<std::shared_ptr<const ServingModel>> ModelManager::LoadVersion(uint64_t version) {
  auto blob = store_->GetModel(version);
  if (!blob.ok()) return blob.status();
  auto m = model::MetaModel::Deserialize(blob->blob, version);
  if (!m.ok()) {
    return absl::DataLossError(absl::StrCat("model version ", version, " is unusable: ", m.status().message()));
  }
  auto out = std::make_shared<ServingModel>();
  out->model = std::shared_ptr<const model::MetaModel>(std::move(*m));
  out->info = blob->info;
  return std::shared_ptr<const ServingModel>(std::move(out));
}

absl::Status ModelManager::Load() {
  absl::MutexLock train_lock(&train_mu_);  // no trainer yet (Start comes later): uncontended, for Publish's contract
  auto pinned = store_->GetMeta(kPinnedKey);
  if (!pinned.ok()) return pinned.status();
  pinned_ = pinned->has_value() && **pinned == "1";
  auto serving = store_->GetMeta(kServingKey);
  if (!serving.ok()) return serving.status();
  uint64_t want = 0;
  if (!serving->has_value() || !absl::SimpleAtoi(**serving, &want) || want == 0) return absl::OkStatus();
  auto loaded = LoadVersion(want);
  if (loaded.ok()) return Publish(*loaded, pinned_);
  // The recorded version does not load (corrupt blob): fall back to the newest older promoted one that does.
  metrics_->model_rejections().Increment();
  auto list = store_->ListModels();
  if (!list.ok()) return list.status();
  for (const auto& info : *list) {
    if (info.version() >= want || !info.promoted()) continue;
    auto older = LoadVersion(info.version());
    if (older.ok()) {
      log::Warn("model_load_fallback",
                {{"version", want}, {"error", loaded.status().message()}, {"serving_version", info.version()}});
      return Publish(*older, pinned_);
    }
  }
  return absl::OkStatus();  // statistics only; the trainer will produce a model
}

absl::Status ModelManager::Publish(std::shared_ptr<const ServingModel> model, bool pinned) {
  if (absl::Status st = store_->PutMeta(kServingKey, absl::StrCat(model->info.version())); !st.ok()) return st;
  if (absl::Status st = store_->PutMeta(kPinnedKey, pinned ? "1" : "0"); !st.ok()) return st;
  pinned_ = pinned;
  UpdateGauges(model.get());
  auto previous = serving_.Set(std::move(model));
  previous.reset();  // released here, outside any lock; in-flight calls may still hold it
  return absl::OkStatus();
}

void ModelManager::UpdateGauges(const ServingModel* m) {
  metrics_->model_version().Set(static_cast<double>(m->info.version()));
  metrics_->model_training_rows().Set(static_cast<double>(m->info.training_rows()));
  metrics_->model_holdout_mape().Set(m->info.evaluation().holdout_mape());
  metrics_->model_holdout_top1().Set(m->info.evaluation().holdout_top1());
  metrics_->model_holdout_coverage().Set(m->info.evaluation().holdout_coverage80());
}

ModelManager::RunFilters ModelManager::ReadRunFilters() const {
  RunFilters f;
  if (stats_ != nullptr) {
    f.levels = stats_->Levels();
    f.distrusted = stats_->DistrustedNodes();
  }
  return f;
}

absl::StatusOr<ModelManager::RunSplit> ModelManager::SnapshotRuns(const RunFilters& filters) const {
  // Reading and converting the runs (seconds of CPU at 1M runs) is training's work too, so it also runs at the
  // trainer's priority: the scans hold no lock that a request takes (RocksDB snapshots and iterators; the store's
  // own mutex only to pin the instance).
  TrainingSetOptions options;
  options.in_holdout = &InHoldoutKey;
  // The runs of nodes the statistics distrust (far from their peers across contexts) are left out; every run is
  // learnt at its strategy's base level, so a strategy that got slower everywhere is not averaged over its before
  // and after (the selector moves predictions to the level now).
  options.distrusted = filters.distrusted;
  options.levels = filters.levels;
  // Training and held-out runs together, each side its share: scoring a candidate stays bounded too.
  options.max_rows = options_.max_training_rows;
  // As many threads as the boosters get: both read and train at the trainer's nice level.
  options.scan_threads = static_cast<size_t>(std::max(1, options_.trainer_threads));
  absl::StatusOr<TrainingSet> set = ReadTrainingSet(*store_, options);
  if (!set.ok()) return set.status();
  if (set->capped > 0 || set->thinned > 0 || set->distrusted > 0) {
    log::Info("training_set", {{"scanned", set->scanned},
                               {"distrusted", set->distrusted},
                               {"thinned", set->thinned},
                               {"capped", set->capped},
                               {"train", set->train.size()},
                               {"holdout", set->holdout.size()}});
  }
  return set;
}

absl::StatusOr<model::TrainOptions> ModelManager::CandidateOptions() const {
  auto catalog = store_->ListStrategies();
  if (!catalog.ok()) return catalog.status();
  auto next = store_->GetMeta(kNextVersionKey);
  if (!next.ok()) return next.status();
  uint64_t version = 1;
  if (next->has_value()) (void)absl::SimpleAtoi(**next, &version);
  if (auto list = store_->ListModels(); list.ok() && !list->empty()) {
    version = std::max(version, list->front().version() + 1);
  }
  model::TrainOptions to;
  to.version = version;
  // One XGBoost thread per booster (no OpenMP barriers); `trainer_threads` boosters at once, all at the trainer's
  // nice level, so a retrain uses idle cores without taking them from SelectAccelerator.
  to.xgb.nthread = 1;
  to.threads = options_.trainer_threads;
  to.xgb.cancel = &cancel_training_;
  for (const auto& s : *catalog) to.catalog.push_back(FromProto(s));
  return to;
}

std::optional<model::PolicyComparison> ModelManager::ReplayOnLog(const model::MetaModel& candidate,
                                                                 const ServingModel* serving,
                                                                 const model::TrainOptions& options) const {
  if (!options_.decision_log.enabled || options_.ope_max_decisions == 0) return std::nullopt;
  const int64_t now = absl::ToUnixMillis(absl::Now());
  absl::StatusOr<ReplaySet> set =
      LoadReplaySet(store_, now - absl::ToInt64Milliseconds(options_.ope_window), now + 1, options_.ope_max_decisions);
  if (!set.ok() || set->rows.empty()) return std::nullopt;
  absl::flat_hash_map<std::string, model::Strategy> strategies;
  for (const model::Strategy& s : options.catalog) strategies.emplace(s.id, s);
  absl::StatusOr<model::PolicyComparison> c =
      CompareOnLog(candidate, serving != nullptr ? serving->model.get() : nullptr, *set, strategies);
  if (!c.ok()) return std::nullopt;
  return *std::move(c);
}

absl::StatusOr<ModelManager::Candidate> ModelManager::TrainCandidate(const RunSplit& runs,
                                                                     const model::TrainOptions& options) const {
  auto trained = model::MetaModel::Train(runs.train, options);
  if (!trained.ok()) return trained.status();
  Candidate out;
  out.model = *std::move(trained);
  out.scores = out.model->Evaluate(runs.holdout);
  return out;
}

std::unique_ptr<model::HoldoutMetrics> ModelManager::ScoreServing(const ServingModel* serving,
                                                                  const std::vector<model::RunRecord>& holdout) const {
  if (serving == nullptr) return nullptr;
  return std::make_unique<model::HoldoutMetrics>(serving->model->Evaluate(holdout));
}

absl::Status ModelManager::Persist(const model::MetaModel& candidate, const v1::ModelVersionInfo& info) {
  auto blob = candidate.Serialize();
  if (!blob.ok()) return blob.status();
  storage::ModelBlob mb{info.version(), *std::move(blob), info};
  if (absl::Status st = store_->PutModel(mb); !st.ok()) return st;
  return store_->PutMeta(kNextVersionKey, absl::StrCat(info.version() + 1));
}

absl::Status ModelManager::PublishCandidate(std::shared_ptr<const model::MetaModel> candidate,
                                            const v1::ModelVersionInfo& info) {
  if (!info.promoted()) {
    metrics_->model_rejections().Increment();
    return absl::OkStatus();
  }
  auto published = std::make_shared<ServingModel>();
  published->model = std::move(candidate);
  published->info = info;
  if (absl::Status st = Publish(std::move(published), false); !st.ok()) return st;
  metrics_->model_promotions().Increment();
  return absl::OkStatus();
}

// snapshot -> train -> evaluate -> decide -> persist -> publish. The heavy steps (snapshot, train, evaluate) run on
// the executor's training worker, at the trainer's priority, on runs and models that no request can see; the
// steps that take a lock a request or ingest takes (the statistics, the store's writes, the swap) run here.
absl::StatusOr<v1::ModelVersionInfo> ModelManager::RetrainNow(std::string_view trigger) {
  absl::MutexLock train_lock(&train_mu_);
  const absl::Time start = absl::Now();
  uint64_t serving_before = 0;
  if (auto serving = serving_.Get()) serving_before = serving->info.version();
  log::Info("retrain_start", {{"trigger", trigger},
                              {"runs_stored", store_->RunCount()},
                              {"new_runs", new_runs_.load(std::memory_order_relaxed)},
                              {"serving_version", serving_before}});
  absl::StatusOr<v1::ModelVersionInfo> info = RetrainLocked();
  LogRetrainOutcome(trigger, serving_before, absl::Now() - start, info);
  return info;
}

absl::StatusOr<v1::ModelVersionInfo> ModelManager::RetrainLocked() {
  const absl::Time start = absl::Now();
  const uint64_t new_runs_before = new_runs_.exchange(0);
  runs_at_last_train_.store(store_->RunCount(), std::memory_order_relaxed);

  const RunFilters filters = ReadRunFilters();
  absl::StatusOr<RunSplit> runs = absl::UnknownError("not read");
  executor_->RunTraining([&] { runs = SnapshotRuns(filters); });
  if (!runs.ok()) {
    new_runs_ += new_runs_before;
    metrics_->retrain_failures().Increment();
    return runs.status();
  }
  const absl::StatusOr<model::TrainOptions> options = CandidateOptions();
  if (!options.ok()) return options.status();

  absl::StatusOr<Candidate> candidate = absl::UnknownError("not trained");
  executor_->RunTraining([&] { candidate = TrainCandidate(*runs, *options); });
  if (cancel_training_.load()) {
    return absl::CancelledError("retrain cancelled: the server is shutting down; nothing was promoted");
  }
  if (!candidate.ok()) {
    metrics_->retrain_failures().Increment();
    return candidate.status();
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  v1::ModelVersionInfo info;
  info.set_version(options->version);
  info.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  info.set_training_rows(runs->train.size());
  info.set_learner(absl::StrCat(
      options->rank_heads ? "xgboost-log-regression+oof-intervals+pairwise-rank"
                          : "xgboost-log-regression+oof-intervals",
      // Unseen models or accelerators get a head without the roofline baseline (model/meta_model.h, raw_heads_).
      candidate->model->HasHeadsWithoutBaseline() ? "+unseen-without-baseline" : ""));
  info.set_training_seconds(seconds);
  FillEvaluation(candidate->scores, info.mutable_evaluation());

  // Compared with the serving model on the same held-out contexts.
  const std::shared_ptr<const ServingModel> serving = serving_.Get();
  std::unique_ptr<model::HoldoutMetrics> current;
  executor_->RunTraining([&] { current = ScoreServing(serving.get(), runs->holdout); });
  if (current != nullptr) {
    info.mutable_evaluation()->set_baseline_mape(std::isfinite(current->mape) ? current->mape : 0);
    info.mutable_evaluation()->set_baseline_top1(std::isfinite(current->top1) ? current->top1 : 0);
  }
  // And replayed on the traffic it would serve, from the decision log.
  std::optional<model::PolicyComparison> replay;
  executor_->RunTraining([&] { replay = ReplayOnLog(*candidate->model, serving.get(), *options); });
  const PromotionDecision decision =
      DecideCandidate(candidate->scores, current.get(), pinned_, NewestQuarter(runs->holdout),
                      OffPolicyInput{replay.has_value() ? &*replay : nullptr, options_.ope_min_ess});
  if (replay.has_value()) {
    ToProto(*replay, decision.used_off_policy, info.mutable_evaluation()->mutable_off_policy());
  }
  info.set_promoted(decision.promote);
  info.set_note(decision.note);

  if (absl::Status st = Persist(*candidate->model, info); !st.ok()) return st;
  metrics_->model_training_seconds().Set(seconds);
  if (absl::Status st = PublishCandidate(std::move(candidate->model), info); !st.ok()) return st;
  return info;
}

absl::StatusOr<uint64_t> ModelManager::Pin(uint64_t version) {
  absl::MutexLock train_lock(&train_mu_);
  if (version == 0) {
    // Unpin: serve the newest promoted version again.
    auto list = store_->ListModels();
    if (!list.ok()) return list.status();
    for (const auto& info : *list) {
      if (!info.promoted()) continue;
      auto loaded = LoadVersion(info.version());
      if (!loaded.ok()) continue;
      if (absl::Status st = Publish(*loaded, false); !st.ok()) return st;
      log::Info("model_unpinned", {{"serving_version", info.version()}});
      return info.version();
    }
    if (absl::Status st = store_->PutMeta(kPinnedKey, "0"); !st.ok()) return st;
    pinned_ = false;
    auto current = serving_.Get();
    log::Info("model_unpinned", {{"serving_version", current ? current->info.version() : 0}});
    return current ? current->info.version() : 0;
  }
  auto loaded = LoadVersion(version);
  if (!loaded.ok()) {
    if (absl::IsNotFound(loaded.status())) {
      return absl::NotFoundError(absl::StrCat("version: model version ", version, " does not exist"));
    }
    return loaded.status();
  }
  if (absl::Status st = Publish(*loaded, true); !st.ok()) return st;
  log::Info("model_pinned", {{"version", version}});
  return version;
}

absl::StatusOr<uint64_t> ModelManager::Rollback() {
  uint64_t target = 0;
  {
    absl::MutexLock train_lock(&train_mu_);
    auto current = serving_.Get();
    if (current == nullptr) return absl::FailedPreconditionError("no model is serving; nothing to roll back");
    auto list = store_->ListModels();
    if (!list.ok()) return list.status();
    for (const auto& info : *list) {
      if (info.version() < current->info.version() && info.promoted()) {
        target = info.version();
        break;
      }
    }
    if (target == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("no promoted version older than ", current->info.version(), " to roll back to"));
    }
  }
  return Pin(target);
}

absl::Status ModelManager::InstallReplicated(const storage::ModelBlob& blob, bool pinned) {
  absl::MutexLock train_lock(&train_mu_);
  auto m = model::MetaModel::Deserialize(blob.blob, blob.version);
  if (!m.ok()) {
    metrics_->model_rejections().Increment();
    return absl::DataLossError(
        absl::StrCat("replicated model version ", blob.version, " is unusable: ", m.status().message()));
  }
  auto stored = store_->GetModel(blob.version);
  if (!stored.ok() || stored->blob != blob.blob) {
    if (absl::Status st = store_->PutModel(blob); !st.ok()) return st;
  }
  auto next = store_->GetMeta(kNextVersionKey);
  uint64_t next_version = 0;
  if (next.ok() && next->has_value()) (void)absl::SimpleAtoi(**next, &next_version);
  if (next_version <= blob.version) {
    if (absl::Status st = store_->PutMeta(kNextVersionKey, absl::StrCat(blob.version + 1)); !st.ok()) return st;
  }
  auto serving = std::make_shared<ServingModel>();
  serving->model = std::shared_ptr<const model::MetaModel>(std::move(*m));
  serving->info = blob.info;
  return Publish(std::move(serving), pinned);
}

void ModelManager::FillInfo(v1::GetModelInfoResponse* response) const {
  auto current = serving_.Get();
  response->set_pinned(pinned_);
  if (current) {
    response->set_serving_version(current->info.version());
    *response->mutable_serving() = current->info;
  }
  auto list = store_->ListModels();
  if (list.ok()) {
    for (size_t i = 0; i < list->size() && i < 20; ++i) *response->add_history() = (*list)[i];
  }
}

void ModelManager::Start() {
  if (!options_.trainer_enabled) return;
  trainer_ = std::thread([this] { TrainerLoop(); });
}

void ModelManager::Stop() {
  CancelTraining();
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (trainer_.joinable()) trainer_.join();
}

void ModelManager::TrainerLoop() {
  absl::Time last = absl::Now();
  // First model soon after start when none is serving (e.g. a freshly seeded store).
  bool want_initial = serving_.Get() == nullptr;
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu_);
      if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) return;
    }
    auto current = serving_.Get();
    if (current) {
      metrics_->model_age_seconds().Set(
          absl::ToDoubleSeconds(absl::Now() - absl::FromUnixMillis(current->info.created_unix_ms())));
    }
    metrics_->storage_bytes().Set(static_cast<double>(store_->ApproximateBytes()));
    const bool timer =
        options_.retrain_interval > absl::ZeroDuration() && absl::Now() - last >= options_.retrain_interval;
    const uint64_t fresh = new_runs_.load(std::memory_order_relaxed);
    const bool count = options_.retrain_min_new_runs > 0 && fresh >= options_.retrain_min_new_runs;
    // A young network retrains as its history grows by a share, so its first models come within minutes of its
    // first runs instead of after a fixed count meant for a mature store; the count trigger caps the gap later.
    const bool growth =
        options_.retrain_growth > 0 && fresh >= options_.retrain_growth_min_runs &&
        static_cast<double>(fresh) >=
            options_.retrain_growth * static_cast<double>(runs_at_last_train_.load(std::memory_order_relaxed));
    // A replica that is not the cluster's trainer keeps its triggers (its counters follow the stream) and acts on
    // them only once it holds the lease; a first model another replica published makes the initial one moot.
    if (may_train_ && !may_train_()) continue;
    want_initial = want_initial && serving_.Get() == nullptr;
    const bool woken = wake_.exchange(false, std::memory_order_relaxed);
    if (!(timer || count || growth || want_initial || woken)) continue;
    if (store_->RunCount() == 0) continue;
    const char* trigger = want_initial ? "initial" : woken ? "drift" : count ? "count" : growth ? "growth" : "timer";
    want_initial = false;
    last = absl::Now();
    (void)RetrainNow(trigger);  // failures are counted in metrics and keep the serving model
  }
}

}  // namespace accelsel::server
