// Off-policy replay: turns logged decisions joined with their runs into rows for the estimators of
// model/off_policy.h, and replays a model's ranking on them, so that a candidate model is judged on the traffic it
// will serve before it is promoted (ModelManager::RetrainNow, docs/OPERATIONS.md "Off-policy evaluation").
//
// Reward of a logged decision (higher is better), in the log units of the objective: for a minimised objective
// -ln(measured / best), where best is the lowest estimate logged with the decision, so that a row's scale does not
// depend on the task's size and a difference of 0.1 between two policies is about 10 % faster; for throughput
// ln(measured / best) with the highest estimate. A failed run scores as a run twice as slow as the worst estimate
// logged (half the lowest throughput). Rows are the decisions whose first-placed candidate ran (its propensity is
// logged; a node's own deviation has none) and whose decision has at least one estimate.
//
// Thread safety: pure functions; they read the store through its own thread-safe interface.
#ifndef ACCELSEL_SERVER_OFF_POLICY_REPLAY_H_
#define ACCELSEL_SERVER_OFF_POLICY_REPLAY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"
#include "accelsel/v1/decision_log.pb.h"
#include "model/off_policy.h"
#include "model/predictor.h"
#include "model/types.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// The reward defined above; nullopt when the decision cannot make a row.
std::optional<double> ReplayReward(const v1::LoggedDecision& decision);

// Logged decisions in a row-aligned form.
struct ReplaySet {
  std::vector<model::OffPolicyRow> rows;
  std::vector<v1::LoggedDecision> decisions;  // decisions[i] made rows[i]
};
// The usable decisions logged in [from_ms, to_ms), the newest `max_decisions` at most.
absl::StatusOr<ReplaySet> LoadReplaySet(storage::TelemetryStore* store, int64_t from_ms, int64_t to_ms,
                                        size_t max_decisions);
// A row from one decision (exposed for tests); nullopt when it cannot make one.
std::optional<model::OffPolicyRow> ReplayRow(const v1::LoggedDecision& decision);

// Which logged candidate `predictor` places first on each decision: its best estimate of the decision's objective
// (its ranking head's order where it has one), among the candidates it can estimate; a candidate missing from
// `strategies` (retired and gone) or without an estimate is never chosen over one with. With no estimate at all
// it keeps the logged first place.
std::vector<size_t> ReplayChoices(const model::Predictor& predictor, const ReplaySet& set,
                                  const absl::flat_hash_map<std::string, model::Strategy>& strategies);

// The candidate's replayed value against the baseline's on `set`, paired row by row. `baseline` null = the logging
// policy itself: its value is the mean logged reward (on-policy), and the difference is unpaired.
absl::StatusOr<model::PolicyComparison> CompareOnLog(
    const model::Predictor& candidate, const model::Predictor* baseline, const ReplaySet& set,
    const absl::flat_hash_map<std::string, model::Strategy>& strategies);

// The comparison as the ModelEvaluation.off_policy message.
void ToProto(const model::PolicyComparison& comparison, bool used_for_promotion, v1::OffPolicyEvaluation* out);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_OFF_POLICY_REPLAY_H_
