// ModelManager: the life cycle of meta-model versions — train on a store snapshot off the RPC threads, evaluate
// against the serving version on held-out runs, persist every version, promote only if not worse, and publish the
// serving version by pointer swap so that SelectAccelerator never waits. Also pin and rollback.
//
// Thread safety: every public method may be called from any thread at once. Serving() and NoteNewRuns() never wait
// on training: the serving model is an immutable ServingModel published through a Snapshot (a request keeps the
// version it took for its whole call), and the run counters are atomics. train_mu_ makes a retrain (trainer thread
// or Retrain RPC), a pin, a rollback and the start-up Load one at a time, and is held across a whole retrain (a
// Pin waits for it); everything that publishes a version (Publish) runs under it. stop_mu_ guards the trainer's
// stop flag; CancelTraining is a lock-free flag that a running retrain polls between boosting rounds. Ownership:
// the manager owns the trainer thread and shares ownership of each published ServingModel with the requests that
// hold it (the last holder frees a replaced version, outside any lock); it borrows `store`, `metrics` and `stats`,
// which must outlive it (ServiceCore owns them).
#ifndef ACCELSEL_SERVER_MODEL_MANAGER_H_
#define ACCELSEL_SERVER_MODEL_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "accelsel/v1/accelsel.pb.h"
#include "model/meta_model.h"
#include "model/observed_stats.h"
#include "model/off_policy.h"
#include "model/predictor.h"
#include "model/types.h"
#include "server/executor.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/snapshot.h"
#include "server/training_set.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// A model version as it serves: built once (trained or loaded), never changed, shared by every call that took it
// and by the retrain that scores it against a candidate.
struct ServingModel {
  std::shared_ptr<const model::MetaModel> model;
  v1::ModelVersionInfo info;
};

// Promotion rule: a candidate replaces the serving model unless, on the same held-out runs, its mean |log error| is
// worse than the serving model's by more than kLogErrorTolerance (about 2 %) and than two standard errors of the
// paired difference (clustered by context), or its held-out top-1 agreement is lower by more than two standard
// errors of the serving model's top-1 on those contexts (sqrt(p(1-p)/n), at least kTop1Tolerance). Training noise
// moves both by about this much between comparable runs; a real regression (e.g. corrupted labels) moves them far
// more.
inline constexpr double kLogErrorTolerance = 0.02;
inline constexpr double kTop1Tolerance = 0.02;
// The same comparison on the newest quarter of the held-out runs, when it has at least this many runs.
inline constexpr uint64_t kMinRecentRuns = 50;

// The promotion rule above, as a pure function of the two models' scores on the same held-out runs (`newest` marks
// the newest quarter of them). The note says why, with the figures.
struct PromotionDecision {
  bool promote = false;
  std::string note;
  bool used_off_policy = false;  // the off-policy verdict decided (or confirmed) it
};
PromotionDecision DecidePromotion(const model::HoldoutMetrics& candidate, const model::HoldoutMetrics& serving,
                                  const std::vector<bool>& newest);
// The newest quarter of held-out runs by report time (ties at the boundary included).
std::vector<bool> NewestQuarter(const std::vector<model::RunRecord>& holdout);

// Whether a trained candidate serves, and the note stored with it: DecidePromotion against the serving model's
// scores (`serving`; null when no model serves), after the rules around it — a candidate with no held-out runs to
// be scored on is not promoted, the first model is, and nothing is while a version is pinned. A pure function.
//
// With an off-policy comparison of the candidate's ranking against the serving model's on logged traffic
// (server/off_policy_replay.h) whose effective sample size reaches `min_ess`, the replay decides when it is
// confident: a candidate confidently worse (the doubly robust difference's 95 % interval below 0) is not promoted,
// one confidently better is, whatever the held-out rule says; otherwise the held-out rule decides. The note says
// which, with the figures.
struct OffPolicyInput {
  const model::PolicyComparison* comparison = nullptr;  // null = no logged traffic to replay
  double min_ess = 0;                                   // 0 = never use the replay
};
PromotionDecision DecideCandidate(const model::HoldoutMetrics& candidate, const model::HoldoutMetrics* serving,
                                  bool pinned, const std::vector<bool>& newest, const OffPolicyInput& off_policy = {});

class ModelManager {
 public:
  // `stats` (not owned; may be null) supplies the strategies' levels that training runs are restated at.
  // `executor` (not owned) runs the heavy phases of a retrain (scan, train, evaluate) on its training worker.
  ModelManager(storage::TelemetryStore* store, Metrics* metrics, const ServerOptions& options, Executor* executor,
               const model::ObservedStats* stats = nullptr);
  ~ModelManager();

  // Loads the serving version recorded in the store (pinned or last promoted). A blob that fails its checks is
  // refused and the newest older promoted version that loads is served instead.
  absl::Status Load() ABSL_LOCKS_EXCLUDED(train_mu_);
  // Starts the background trainer (if options.trainer_enabled).
  void Start();
  // Cluster mode: the trainer retrains only while `may_train` says so (this replica holds the trainer lease,
  // server/cluster_models.h); set before Start. Retrain RPCs are routed by the caller, not gated here.
  void SetTrainingGate(std::function<bool()> may_train) { may_train_ = std::move(may_train); }
  // Stops a running training at its next boosting round (the retrain returns CANCELLED, nothing is promoted) and
  // the trainer loop; Stop() also joins it. Shutdown calls CancelTraining() first so that it never waits for a
  // long retrain, whether the trainer or a Retrain RPC runs it.
  void CancelTraining() { cancel_training_.store(true); }
  void Stop() ABSL_LOCKS_EXCLUDED(stop_mu_);

  std::shared_ptr<const ServingModel> Serving() const { return serving_.Get(); }
  void NoteNewRuns(size_t n) { new_runs_.fetch_add(n, std::memory_order_relaxed); }
  // Asks the trainer for a retrain at its next tick (within a second), whatever its triggers say: live error has
  // drifted (server/decision_log.h). No effect while the trainer is off.
  void WakeTrainer() { wake_.store(true, std::memory_order_relaxed); }

  // Trains a candidate now, evaluates, persists and maybe promotes it; returns when done. The scan, training and
  // evaluation run on the executor's training worker, the rest on the calling thread. `trigger` says why, in the
  // retrain's log lines ("rpc", or the trainer's "initial", "timer", "count", "growth", "drift").
  absl::StatusOr<v1::ModelVersionInfo> RetrainNow(std::string_view trigger = "rpc") ABSL_LOCKS_EXCLUDED(train_mu_);
  // Serves `version` and stops automatic promotion; 0 unpins (the newest promoted version serves again).
  absl::StatusOr<uint64_t> Pin(uint64_t version) ABSL_LOCKS_EXCLUDED(train_mu_);
  // Serves the promoted version before the current one, and pins it.
  absl::StatusOr<uint64_t> Rollback() ABSL_LOCKS_EXCLUDED(train_mu_);
  void FillInfo(v1::GetModelInfoResponse* response) const;
  bool pinned() const { return pinned_.load(); }

  // Cluster mode: serves a version another replica trained (`blob` as it published it), pinned or not. The blob is
  // stored first when this store lacks it or holds a different one under the same number (a candidate this
  // replica trained and never promoted while it held the lease); one that does not load is refused (DATA_LOSS)
  // and the serving version stays.
  absl::Status InstallReplicated(const storage::ModelBlob& blob, bool pinned) ABSL_LOCKS_EXCLUDED(train_mu_);

  // Whether runs of this context are held out from training for evaluation (a fixed hash split by exact context,
  // about 20%), so that candidate and serving model are compared on tasks neither was trained on.
  static bool InHoldout(const model::TaskContext& context);
  // The same by the context's model::HoldoutContextKey.
  static bool InHoldoutKey(uint64_t holdout_key);

 private:
  // The steps of a retrain, in order; RetrainNow logs its start and end around them.
  absl::StatusOr<v1::ModelVersionInfo> RetrainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(train_mu_);
  //
  // What the statistics say about the stored runs: the strategies' levels to restate them at and the nodes whose
  // runs are left out. Read at the caller's priority: the statistics' lock belongs to SelectAccelerator and ingest.
  struct RunFilters {
    model::ObservedStats::LevelHistory levels;
    absl::flat_hash_set<uint64_t> distrusted;
  };
  RunFilters ReadRunFilters() const;
  // The runs to train and score on (server/training_set.h): split by InHoldout, filtered, thinned by node share,
  // capped at --max_training_rows (both sides together, each its share) and restated at
  // their strategies' base levels. Runs on the training worker.
  using RunSplit = TrainingSet;
  absl::StatusOr<RunSplit> SnapshotRuns(const RunFilters& filters) const;
  // The next version number (never reused) and the training options, with the catalogue's strategies.
  absl::StatusOr<model::TrainOptions> CandidateOptions() const;
  // Train and evaluate: a candidate and its scores on the held-out runs. Runs on the training worker.
  struct Candidate {
    std::unique_ptr<model::MetaModel> model;
    model::HoldoutMetrics scores;
  };
  absl::StatusOr<Candidate> TrainCandidate(const RunSplit& runs, const model::TrainOptions& options) const;
  // Replay: the candidate's ranking against the serving model's on the decisions logged in the last ope_window and
  // joined with their runs; nullopt when none are (or the log is off). Runs on the training worker.
  std::optional<model::PolicyComparison> ReplayOnLog(const model::MetaModel& candidate, const ServingModel* serving,
                                                     const model::TrainOptions& options) const;
  // The serving model's scores on the same held-out runs, or null when none serves. Runs the serving instance
  // itself on the training worker: its evaluation takes no lock that a request takes (MetaModel::Evaluate).
  std::unique_ptr<model::HoldoutMetrics> ScoreServing(const ServingModel* serving,
                                                      const std::vector<model::RunRecord>& holdout) const;
  // Persist: stores the candidate (blob and info), promoted or not, and moves next_model_version on.
  absl::Status Persist(const model::MetaModel& candidate, const v1::ModelVersionInfo& info);
  // Publish: a promoted candidate becomes the serving version; counts the promotion or the rejection.
  absl::Status PublishCandidate(std::shared_ptr<const model::MetaModel> candidate, const v1::ModelVersionInfo& info)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(train_mu_);

  absl::StatusOr<std::shared_ptr<const ServingModel>> LoadVersion(uint64_t version);
  // Records `model` as serving (and the pin) in the store, then swaps it in.
  absl::Status Publish(std::shared_ptr<const ServingModel> model, bool pinned) ABSL_EXCLUSIVE_LOCKS_REQUIRED(train_mu_);
  void TrainerLoop() ABSL_LOCKS_EXCLUDED(train_mu_, stop_mu_);
  void UpdateGauges(const ServingModel* m);

  storage::TelemetryStore* const store_;     // not owned
  const model::ObservedStats* const stats_;  // not owned; may be null
  Metrics* const metrics_;                   // not owned
  Executor* const executor_;                 // not owned
  const ServerOptions options_;
  Snapshot<ServingModel> serving_;
  std::atomic<uint64_t> new_runs_{0};
  std::atomic<uint64_t> runs_at_last_train_{0};  // store size when the last retrain read it
  std::atomic<bool> pinned_{false};              // written under train_mu_ (with the store's record), read lock-free
  std::atomic<bool> cancel_training_{false};
  std::atomic<bool> wake_{false};    // WakeTrainer
  std::function<bool()> may_train_;  // set before Start; empty = always

  absl::Mutex train_mu_;  // one training, pin, rollback or load at a time
  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread trainer_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_MODEL_MANAGER_H_
