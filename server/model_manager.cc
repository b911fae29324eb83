// Model versions: train -> evaluate on held-out contexts -> persist -> promote (or not) -> publish by swap.
#include "server/model_manager.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "model/meta_model.h"
#include "model/observed_stats.h"
#include "model/robust.h"
#include "proto/convert.h"

namespace accelsel::server {
namespace {

// Runs `fn` on a thread of its own at nice level `nice` (0 = unchanged), so training yields its core to the RPC
// threads whenever they are runnable instead of competing with them as an equal. A separate thread because Linux
// does not let an unprivileged thread raise its priority back afterwards.
template <typename Fn>
void RunAtNice(int nice, Fn&& fn) {
  if (nice == 0) {
    fn();
    return;
  }
  std::thread t([&] {
    const auto tid = static_cast<pid_t>(syscall(SYS_gettid));
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice);  // best effort
    if (nice >= 19) {
      // The lowest nice level also takes the SCHED_IDLE policy (allowed unprivileged): Linux treats a core that runs
      // only SCHED_IDLE threads as idle when it places a waking thread, so an RPC thread preempts training at once
      // instead of waiting for a nice-19 thread's slice. Threads the training starts inherit it.
      sched_param param{};
      (void)sched_setscheduler(tid, SCHED_IDLE, &param);  // best effort
    }
    fn();
  });
  t.join();
}

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

}  // namespace

bool ModelManager::InHoldout(const model::TaskContext& context) {
  // A stable hash (FNV-1a), not absl::Hash: absl's is seeded per process, and the split must stay the same across
  // restarts so that a model is never evaluated on contexts it was trained on.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](absl::string_view bytes) {
    for (unsigned char ch : bytes) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // field separator
    h *= 1099511628211ULL;
  };
  mix(absl::AsciiStrToLower(context.model.name));
  mix(absl::AsciiStrToLower(context.model.weight_dtype));
  mix(absl::AsciiStrToLower(context.hardware.accelerator));
  mix(absl::StrCat(context.hardware.count, "/", context.workload.prompt_tokens, "/",
                   context.workload.output_tokens, "/", context.workload.batch_size));
  return (h >> 17) % 100 < kHoldoutPercent;
}

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
      d.mean, d.se, static_cast<unsigned>(d.rows), dr.mean, dr.se, static_cast<unsigned>(dr.rows), cand.mape,
      cur.mape, cand.top1, cur.top1);
  if (!error_ok) out.note += "; held back: higher error on the held-out runs";
  if (!recent_ok) out.note += "; held back: a sudden jump of error on the newest held-out runs";
  if (!top1_ok) out.note += "; held back: lower held-out top-1";
  return out;
}

ModelManager::ModelManager(storage::TelemetryStore* store, Metrics* metrics, const ServerOptions& options,
                           const model::ObservedStats* stats)
    : store_(store), stats_(stats), metrics_(metrics), options_(options) {}

ModelManager::~ModelManager() { Stop(); }

absl::StatusOr<std::shared_ptr<const ServingModel>> ModelManager::LoadVersion(uint64_t version) {
  auto blob = store_->GetModel(version);
  if (!blob.ok()) return blob.status();
  auto m = model::MetaModel::Deserialize(blob->blob, version);
  if (!m.ok()) {
    return absl::DataLossError(absl::StrCat("model version ", version, " is unusable: ", m.status().message()));
  }
  auto out = std::make_shared<ServingModel>();
  out->predictor = std::shared_ptr<const model::Predictor>(std::move(*m));
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
    if (older.ok()) return Publish(*older, pinned_);
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

absl::StatusOr<v1::ModelVersionInfo> ModelManager::RetrainNow() {
  absl::MutexLock train_lock(&train_mu_);
  const absl::Time start = absl::Now();
  const uint64_t new_runs_before = new_runs_.exchange(0);
  runs_at_last_train_.store(store_->RunCount(), std::memory_order_relaxed);

  // A consistent snapshot of the store, split by task context. Reading and converting it (seconds of CPU at 1M
  // runs) is training's work too, so it also runs at the trainer's priority: the scan holds no lock that a request
  // takes (a RocksDB snapshot and iterator; the store's own mutex only to pin the instance).
  std::vector<model::RunRecord> train, holdout;
  absl::Status scan;
  // Copied here, at the caller's priority: the statistics' lock belongs to SelectAccelerator and ingest.
  const model::ObservedStats::LevelHistory levels =
      stats_ != nullptr ? stats_->Levels() : model::ObservedStats::LevelHistory{};
  const absl::flat_hash_set<uint64_t> distrusted =
      stats_ != nullptr ? stats_->DistrustedNodes() : absl::flat_hash_set<uint64_t>{};
  RunAtNice(options_.trainer_nice, [&] {
    scan = store_->ScanRuns(0, [&](const v1::RunReport& r) {
      model::RunRecord rec = FromProto(r);
      (InHoldout(rec.context) ? holdout : train).push_back(std::move(rec));
      return true;
    });
    // The runs of nodes the statistics distrust (far from their peers across contexts) are left out.
    if (scan.ok() && !distrusted.empty()) {
      auto trusted = [&](std::vector<model::RunRecord>& runs) {
        std::erase_if(runs, [&](const model::RunRecord& r) {
          return distrusted.contains(model::ObservedStats::NodeHash(r.node_id));
        });
      };
      trusted(train);
      trusted(holdout);
    }
    // Every run is learnt at its strategy's base level, so a strategy that got slower everywhere is not averaged
    // over its before and after (the selector moves predictions to the level now).
    if (scan.ok() && !levels.empty()) {
      for (auto& r : train) model::ObservedStats::ToBaseLevel(levels, &r);
      for (auto& r : holdout) model::ObservedStats::ToBaseLevel(levels, &r);
    }
    // No node may carry more than a fixed share of a context's rows (poisoning resistance, model/robust.h).
    // The held-out runs too: a node that floods the contexts it alone reports must not score the candidates there.
    if (scan.ok()) {
      train = model::ThinByNodeShare(std::move(train));
      holdout = model::ThinByNodeShare(std::move(holdout));
    }
  });
  if (!scan.ok()) {
    new_runs_ += new_runs_before;
    metrics_->retrain_failures().Increment();
    return scan;
  }
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
  absl::StatusOr<std::unique_ptr<model::MetaModel>> candidate = absl::UnknownError("not trained");
  model::HoldoutMetrics cand;
  // Training and evaluation run at the trainer's priority, on models no request can see (no lock shared with
  // SelectAccelerator, so no priority inversion).
  RunAtNice(options_.trainer_nice, [&] {
    candidate = model::MetaModel::Train(train, to);
    if (candidate.ok()) cand = (*candidate)->Evaluate(holdout);
  });
  if (cancel_training_.load()) {
    return absl::CancelledError("retrain cancelled: the server is shutting down; nothing was promoted");
  }
  if (!candidate.ok()) {
    metrics_->retrain_failures().Increment();
    return candidate.status();
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  v1::ModelVersionInfo info;
  info.set_version(version);
  info.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  info.set_training_rows(train.size());
  info.set_learner(to.rank_heads ? "xgboost-log-regression+oof-intervals+pairwise-rank"
                                  : "xgboost-log-regression+oof-intervals");
  info.set_training_seconds(seconds);
  FillEvaluation(cand, info.mutable_evaluation());

  // Compare with the serving model on the same held-out contexts.
  auto serving = serving_.Get();
  bool promote = std::isfinite(cand.mape) && cand.rows > 0;
  std::string note;
  if (serving != nullptr) {
    const auto* current = dynamic_cast<const model::MetaModel*>(serving->predictor.get());
    model::HoldoutMetrics cur;
    if (current != nullptr) {
      // Evaluated on a private copy at the trainer's priority: the serving instance's predictor locks belong to
      // SelectAccelerator, and a deprioritised thread must never hold them.
      auto blob = current->Serialize();
      absl::StatusOr<std::unique_ptr<model::MetaModel>> copy = absl::UnknownError("serving model not copied");
      RunAtNice(options_.trainer_nice, [&] {
        if (blob.ok()) copy = model::MetaModel::Deserialize(*blob, current->version());
        if (copy.ok()) cur = (*copy)->Evaluate(holdout);
      });
      if (!copy.ok()) cur = current->Evaluate(holdout);
    }
    info.mutable_evaluation()->set_baseline_mape(std::isfinite(cur.mape) ? cur.mape : 0);
    info.mutable_evaluation()->set_baseline_top1(std::isfinite(cur.top1) ? cur.top1 : 0);
    if (promote && std::isfinite(cur.mape)) {
      const PromotionDecision decision = DecidePromotion(cand, cur, NewestQuarter(holdout));
      promote = decision.promote;
      note = decision.note;
    }
  } else {
    note = absl::StrFormat("first model; holdout MAPE %.4f, top-1 %.3f", cand.mape, cand.top1);
  }
  if (!std::isfinite(cand.mape) || cand.rows == 0) note = "no held-out runs to evaluate on; not promoted";
  if (pinned_) {
    promote = false;
    note += "; a version is pinned (automatic promotion is off until `model pin 0`)";
  }
  info.set_promoted(promote);
  info.set_note(absl::StrCat(promote ? "promoted: " : "not promoted: ", note));

  auto blob = (*candidate)->Serialize();
  if (!blob.ok()) return blob.status();
  storage::ModelBlob mb{version, *std::move(blob), info};
  if (absl::Status st = store_->PutModel(mb); !st.ok()) return st;
  if (absl::Status st = store_->PutMeta(kNextVersionKey, absl::StrCat(version + 1)); !st.ok()) return st;
  metrics_->model_training_seconds().Set(seconds);
  if (promote) {
    auto published = std::make_shared<ServingModel>();
    published->predictor = std::shared_ptr<const model::Predictor>(std::move(*candidate));
    published->info = info;
    if (absl::Status st = Publish(std::move(published), false); !st.ok()) return st;
    metrics_->model_promotions().Increment();
  } else {
    metrics_->model_rejections().Increment();
  }
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
      return info.version();
    }
    if (absl::Status st = store_->PutMeta(kPinnedKey, "0"); !st.ok()) return st;
    pinned_ = false;
    auto current = serving_.Get();
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
    const bool timer = options_.retrain_interval > absl::ZeroDuration() &&
                       absl::Now() - last >= options_.retrain_interval;
    const uint64_t fresh = new_runs_.load(std::memory_order_relaxed);
    const bool count = options_.retrain_min_new_runs > 0 && fresh >= options_.retrain_min_new_runs;
    // A young network retrains as its history grows by a share, so its first models come within minutes of its
    // first runs instead of after a fixed count meant for a mature store; the count trigger caps the gap later.
    const bool growth =
        options_.retrain_growth > 0 && fresh >= options_.retrain_growth_min_runs &&
        static_cast<double>(fresh) >=
            options_.retrain_growth * static_cast<double>(runs_at_last_train_.load(std::memory_order_relaxed));
    if (!(timer || count || growth || want_initial)) continue;
    if (store_->RunCount() == 0) continue;
    want_initial = false;
    last = absl::Now();
    (void)RetrainNow();  // failures are counted in metrics and keep the serving model
  }
}

}  // namespace accelsel::server
