// DecisionLog on a real RocksDB store: ids, the join (followed, not followed, unknown, expired, foreign, repeat, a
// decision still queued), retention by age and by bytes, the bounded queue, drift, and the quality window.
#include "server/decision_log.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "model/types.h"
#include "tests/server/test_server.h"
#include "tests/test_util/decision_log_size.h"
#include "tests/test_util/registry.h"

namespace accelsel::server {
namespace {

using testing::FreshDir;

constexpr int64_t kT0 = 1'780'000'000'000;  // 2026-05-28, ms

class DecisionLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions so;
    so.path = FreshDir("decision-log");
    so.sync_writes = false;
    auto store = storage::TelemetryStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    options_.now_ms = [this] { return now_.load(); };
    options_.drift_cooldown = absl::Minutes(5);
  }

  std::unique_ptr<DecisionLog> Open(DecisionLog::Hooks hooks = {}) {
    return std::make_unique<DecisionLog>(store_.get(), &metrics_, options_, std::move(hooks));
  }

  // A decision for `node` ranking a (first, predicted 100 ms, interval 80-120) before b (predicted 150 ms).
  static model::Recommendation Rec(const model::Strategy* s, double expected, double low, double high, double failure,
                                   model::EvidenceLayer layer) {
    model::Recommendation r;
    r.strategy = s;
    r.expected_value = expected;
    r.interval_low = low;
    r.interval_high = high;
    r.failure_probability = failure;
    r.layer = layer;
    return r;
  }

  // A decision for `node` ranking a (first, predicted 100 ms, interval 80-120) before b (predicted 150 ms).
  std::unique_ptr<DecisionEvent> Decision(const std::string& node, uint64_t version = 3, uint64_t salt = 0,
                                          const std::string& replica = "") {
    const std::string id = MakeDecisionId(now_.load(), ++counter_ + salt);
    v1::TaskContext context;
    context.mutable_model()->set_name("m");
    context.mutable_hardware()->set_accelerator("gpu");
    std::vector<model::Recommendation> recs = {Rec(&a_, 100, 80, 120, 0.1, model::EvidenceLayer::kModel),
                                               Rec(&b_, 150, 120, 180, 0.2, model::EvidenceLayer::kObserved)};
    recs[0].selection_probability = 0.95;
    DecisionRecord r;
    r.decision_id = id;
    r.time_unix_ms = now_.load();
    r.node_id = node;
    r.model_version = version;
    r.objective = v1::OBJECTIVE_E2E_LATENCY;
    r.context = &context;
    r.candidates = recs;
    r.replica_id = replica;
    now_ += 1;  // one decision per millisecond, so that ids order as they were made
    return std::make_unique<DecisionEvent>(r);
  }

  static v1::RunReport Report(const std::string& decision_id, const std::string& node, const std::string& strategy,
                              double e2e_ms, v1::RunStatus status = v1::RUN_STATUS_OK) {
    static std::atomic<int> runs{0};
    v1::RunReport r;
    r.set_run_id(absl::StrCat("run-", runs++));
    r.set_node_id(node);
    r.set_decision_id(decision_id);
    r.set_strategy_id(strategy);
    r.set_status(status);
    r.set_time_unix_ms(kT0);
    if (status == v1::RUN_STATUS_OK) r.mutable_metrics()->set_e2e_latency_ms(e2e_ms);
    return r;
  }

  // The stored decision `id` with its joined run, as the log's readers see it.
  v1::LoggedDecision Stored(const std::string& id) {
    v1::LoggedDecision found;
    bool seen = false;
    const int64_t t = *DecisionIdTime(id);
    EXPECT_TRUE(ScanLoggedDecisions(store_.get(), t, t + 1, [&](const v1::LoggedDecision& d) {
                  if (d.decision_id() != id) return true;
                  found = d;
                  seen = true;
                  return false;
                }).ok());
    EXPECT_TRUE(seen) << id;
    return found;
  }

  size_t StoredCount() {
    auto size = testing::StoredDecisionLogSize(*store_);
    EXPECT_TRUE(size.ok()) << size.status();
    return size.ok() ? size->records : 0;
  }

  std::atomic<int64_t> now_{kT0};
  uint64_t counter_ = 0;
  model::Strategy a_{.id = "a"}, b_{.id = "b"};
  Metrics metrics_;
  DecisionLogOptions options_;
  std::unique_ptr<storage::TelemetryStore> store_;
};

TEST(DecisionIdTest, CarriesItsTimeAndSortsByIt) {
  const std::string early = MakeDecisionId(kT0, 0xffffffffffffffffULL);
  const std::string late = MakeDecisionId(kT0 + 1, 0);
  EXPECT_EQ(early.size(), 32u);
  EXPECT_EQ(DecisionIdTime(early), kT0);
  EXPECT_EQ(DecisionIdTime(late), kT0 + 1);
  EXPECT_LT(early, late);
  EXPECT_LE(DecisionKeyAt(kT0), early);
  EXPECT_LT(early, DecisionKeyAt(kT0 + 1));
  // Ids of other shapes (the server's old ones, a client's own) are not decision ids of this log.
  for (const char* other : {"d-0123456789abcdef0123456789abcdef", "node-7:run-1", "d1-0123456789ab-0123",
                            "d1-0123456789AB-0123456789abcdef", "d1-0123456789ab_0123456789abcdef", ""}) {
    EXPECT_FALSE(DecisionIdTime(other).has_value()) << other;
  }
}

TEST(EncodeDecisionTest, IsTheLoggedDecisionMessageFieldByField) {
  model::Strategy a{.id = "vllm:tp=2:fp8-with-a-long-id"}, b{.id = "b"};
  const std::string id = MakeDecisionId(kT0, 7);
  v1::TaskContext context;
  context.mutable_model()->set_name("llama");
  context.mutable_workload()->set_batch_size(8);
  v1::Constraints constraints;
  constraints.set_max_latency_ms(250);
  std::vector<model::Recommendation> recs(2);
  recs[0].strategy = &a;
  recs[0].expected_value = 1234.5;
  recs[0].interval_low = 1000;
  recs[0].interval_high = 1500.25;
  recs[0].failure_probability = 0.125;
  recs[0].layer = model::EvidenceLayer::kModel;
  recs[0].selection_probability = 0.875;
  recs[0].explored = true;
  recs[1].strategy = &b;
  recs[1].layer = model::EvidenceLayer::kUnknown;
  DecisionRecord e;
  e.decision_id = id;
  e.time_unix_ms = kT0;
  e.node_id = "node-1";
  e.model_version = 300;
  e.context_key = 0xfedcba9876543210ULL;
  e.objective = v1::OBJECTIVE_THROUGHPUT;
  e.context = &context;
  e.constraints = &constraints;
  e.candidates = recs;

  const std::string bytes = EncodeDecision(e);
  v1::LoggedDecision d;
  ASSERT_TRUE(d.ParseFromString(bytes));
  // Stored compactly: ids, packed float numbers, packed layers.
  ASSERT_EQ(d.candidate_ids_size(), 2);
  EXPECT_EQ(d.candidate_numbers_size(), 8);
  EXPECT_EQ(d.candidate_layers_size(), 2);
  EXPECT_EQ(d.candidates_size(), 0);
  ASSERT_TRUE(ExpandStoredCandidates(&d));
  v1::LoggedDecision want;
  want.set_decision_id(id);
  want.set_time_unix_ms(kT0);
  want.set_node_id("node-1");
  want.set_model_version(300);
  want.set_context_key(0xfedcba9876543210ULL);
  *want.mutable_context() = context;
  want.set_objective(v1::OBJECTIVE_THROUGHPUT);
  *want.mutable_constraints() = constraints;
  auto* ca = want.add_candidates();
  ca->set_strategy_id(a.id);
  ca->set_expected_value(1234.5);
  ca->set_interval_low(1000);
  ca->set_interval_high(1500.25);
  ca->set_failure_probability(0.125);
  ca->set_evidence_layer(v1::EVIDENCE_LAYER_MODEL);
  auto* cb = want.add_candidates();
  cb->set_strategy_id("b");
  cb->set_evidence_layer(v1::EVIDENCE_LAYER_UNKNOWN);
  want.set_first_propensity(0.875);
  want.set_explored(true);
  EXPECT_EQ(d.SerializeAsString(), want.SerializeAsString()) << d.DebugString();
  EXPECT_EQ(OutcomeKey(id), id + "/o");
  // The queued event finds its id and fields without parsing.
  const DecisionEvent event(e);
  EXPECT_EQ(event.bytes, bytes);
  EXPECT_EQ(event.decision_id, id);
  EXPECT_EQ(event.node_id, "node-1");
  EXPECT_EQ(event.model_version, 300u);
  EXPECT_TRUE(event.explored);
  // The stored form is smaller than the same decision written as LoggedCandidate messages.
  EXPECT_LT(bytes.size(), want.ByteSizeLong());
}

TEST(EncodeDecisionTest, ExpandingLeavesMessageFormCandidatesAndRefusesDamagedRecords) {
  // A record whose candidates are LoggedCandidate messages (a client's own, or one written by hand) reads as it is.
  v1::LoggedDecision plain;
  plain.add_candidates()->set_strategy_id("a");
  v1::LoggedDecision copy = plain;
  ASSERT_TRUE(ExpandStoredCandidates(&copy));
  EXPECT_EQ(copy.SerializeAsString(), plain.SerializeAsString());
  // Numbers or layers that do not match the ids: damaged, refused.
  v1::LoggedDecision damaged;
  damaged.add_candidate_ids("a");
  damaged.add_candidate_numbers(1);
  damaged.add_candidate_layers(v1::EVIDENCE_LAYER_MODEL);
  EXPECT_FALSE(ExpandStoredCandidates(&damaged));
  v1::LoggedDecision orphan_numbers;
  orphan_numbers.add_candidate_numbers(1);
  EXPECT_FALSE(ExpandStoredCandidates(&orphan_numbers));
}

TEST(MeasuredObjectiveTest, ReadsTheObjectivesMetric) {
  v1::RunMetrics m;
  m.set_e2e_latency_ms(2000);
  m.set_ttft_ms(50);
  m.set_throughput_tokens_per_s(0);
  EXPECT_EQ(MeasuredObjective(m, v1::OBJECTIVE_E2E_LATENCY, 0), 2000);
  EXPECT_EQ(MeasuredObjective(m, v1::OBJECTIVE_UNSPECIFIED, 0), 2000);
  EXPECT_EQ(MeasuredObjective(m, v1::OBJECTIVE_TTFT, 0), 50);
  EXPECT_FALSE(MeasuredObjective(m, v1::OBJECTIVE_TPOT, 0).has_value());        // not measured
  EXPECT_FALSE(MeasuredObjective(m, v1::OBJECTIVE_THROUGHPUT, 0).has_value());  // not positive
  EXPECT_FALSE(MeasuredObjective(m, v1::OBJECTIVE_COST, 0).has_value());        // no price
  EXPECT_DOUBLE_EQ(*MeasuredObjective(m, v1::OBJECTIVE_COST, 3.6), 2000 / 3.6e6 * 3.6);
}

TEST_F(DecisionLogTest, JoinsFollowedAndNotFollowedRunsWithTheirEstimates) {
  auto log = Open();
  auto followed = Decision("n1");
  auto other = Decision("n1");
  const std::string followed_id(followed->decision_id);
  const std::string other_id(other->decision_id);
  ASSERT_TRUE(log->RecordDecision(std::move(followed)));
  ASSERT_TRUE(log->RecordDecision(std::move(other)));
  // Queued right behind their decisions, not yet written: the join still finds them.
  ASSERT_TRUE(log->RecordOutcome(Report(followed_id, "n1", "a", 110)));
  ASSERT_TRUE(log->RecordOutcome(Report(other_id, "n1", "b", 300)));
  log->Flush();

  const v1::LoggedDecision f = Stored(followed_id);
  ASSERT_TRUE(f.has_outcome());
  EXPECT_TRUE(f.outcome().followed());
  EXPECT_EQ(f.outcome().candidate_index(), 0);
  EXPECT_EQ(f.outcome().node_id(), "n1");
  EXPECT_DOUBLE_EQ(f.outcome().measured_value(), 110);
  const v1::LoggedDecision o = Stored(other_id);
  ASSERT_TRUE(o.has_outcome());
  EXPECT_FALSE(o.outcome().followed());
  EXPECT_EQ(o.outcome().candidate_index(), 1);
  EXPECT_EQ(log->joins(JoinResult::kJoined), 2u);

  v1::GetLiveQualityResponse q;
  ASSERT_TRUE(log->Quality(absl::Hours(1), 10, &q).ok());
  EXPECT_EQ(q.overall().decisions(), 2u);
  EXPECT_EQ(q.overall().joined_reports(), 2u);
  EXPECT_EQ(q.overall().scored_reports(), 2u);
  // |110-100|/110 and |300-150|/300.
  EXPECT_NEAR(q.overall().mape(), (10.0 / 110 + 150.0 / 300) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(q.overall().coverage80(), 0.5);  // 110 in [80,120]; 300 not in [120,180]
  EXPECT_DOUBLE_EQ(q.overall().follow_rate(), 0.5);
  EXPECT_NEAR(q.overall().failures_predicted(), 0.1 + 0.2, 1e-7);  // stored as floats
  // The followed run took 110 ms where the other candidate was estimated at 150: no regret.
  EXPECT_DOUBLE_EQ(q.overall().mean_regret_log(), 0);
  ASSERT_EQ(q.versions_size(), 1);
  EXPECT_EQ(q.versions(0).version(), 3u);
  ASSERT_EQ(q.nodes_size(), 1);
  EXPECT_EQ(q.nodes(0).node_id(), "n1");
}

TEST_F(DecisionLogTest, CountsUnknownExpiredForeignAndRepeatedIdsWithoutJoiningThem) {
  options_.max_age = absl::Hours(1);
  auto log = Open();
  auto mine = Decision("n1");
  auto anonymous = Decision("");
  const std::string mine_id(mine->decision_id);
  const std::string anonymous_id(anonymous->decision_id);
  ASSERT_TRUE(log->RecordDecision(std::move(mine)));
  ASSERT_TRUE(log->RecordDecision(std::move(anonymous)));
  log->Flush();

  log->RecordOutcome(Report(mine_id, "n2", "a", 100));                             // foreign: made for n1
  log->RecordOutcome(Report(anonymous_id, "n2", "a", 100));                        // anyone may join it
  log->RecordOutcome(Report(anonymous_id, "n3", "a", 100));                        // repeat
  log->RecordOutcome(Report(MakeDecisionId(kT0, 42), "n1", "a", 100));             // right shape, never made
  log->RecordOutcome(Report("node-own-id:17", "n1", "a", 100));                    // another shape: unknown
  log->RecordOutcome(Report(MakeDecisionId(kT0 - 7'200'000, 1), "n1", "a", 100));  // older than max_age
  log->Flush();

  EXPECT_EQ(log->joins(JoinResult::kForeign), 1u);
  EXPECT_EQ(log->joins(JoinResult::kJoined), 1u);
  EXPECT_EQ(log->joins(JoinResult::kRepeat), 1u);
  EXPECT_EQ(log->joins(JoinResult::kUnknown), 2u);
  EXPECT_EQ(log->joins(JoinResult::kExpired), 1u);
  EXPECT_FALSE(Stored(mine_id).has_outcome());  // the foreign report did not claim it
  const v1::LoggedDecision a = Stored(anonymous_id);
  ASSERT_TRUE(a.has_outcome());
  EXPECT_EQ(a.outcome().node_id(), "n2");  // the first join stays
}

TEST_F(DecisionLogTest, JoinsADecisionReadBackFromTheStoreAfterARestart) {
  std::string id;
  {
    auto log = Open();
    auto d = Decision("n1");
    id = std::string(d->decision_id);
    ASSERT_TRUE(log->RecordDecision(std::move(d)));
  }  // stopped: written
  auto log = Open();
  ASSERT_TRUE(log->RecordOutcome(Report(id, "n1", "a", 95)));
  log->Flush();
  EXPECT_EQ(log->joins(JoinResult::kJoined), 1u);
  EXPECT_TRUE(Stored(id).outcome().followed());
}

TEST_F(DecisionLogTest, JoinsStoredDecisionsInEitherFormAndTwoReportsInOneBatchOnlyOnce) {
  std::string id;
  {
    auto log = Open();
    auto d = Decision("n1");
    id = std::string(d->decision_id);
    ASSERT_TRUE(log->RecordDecision(std::move(d)));
  }
  // A record whose candidates are LoggedCandidate messages (not the writer's stored form) joins as well.
  v1::LoggedDecision plain;
  plain.set_decision_id(MakeDecisionId(now_.load(), 999));
  plain.set_time_unix_ms(now_.load());
  plain.set_node_id("n2");
  plain.set_model_version(3);
  auto* c = plain.add_candidates();
  c->set_strategy_id("a");
  c->set_expected_value(100);
  c->set_interval_low(80);
  c->set_interval_high(120);
  c->set_evidence_layer(v1::EVIDENCE_LAYER_MODEL);
  ASSERT_TRUE(store_->PutDecisions({{plain.decision_id(), plain.SerializeAsString()}}).ok());
  auto log = Open();
  // Both reports of `id` reach the writer in one event: the second is a repeat although the first's outcome record
  // is not written yet.
  const v1::RunReport first = Report(id, "n1", "b", 160), again = Report(id, "n1", "b", 161),
                      other = Report(plain.decision_id(), "n2", "a", 110);
  ASSERT_EQ(log->RecordOutcomes({&first, &again, &other}), 3u);
  log->Flush();
  EXPECT_EQ(log->joins(JoinResult::kJoined), 2u);
  EXPECT_EQ(log->joins(JoinResult::kRepeat), 1u);
  const v1::LoggedOutcome o = Stored(id).outcome();
  EXPECT_EQ(o.run_id(), first.run_id());
  EXPECT_EQ(o.candidate_index(), 1);
  EXPECT_FALSE(o.followed());
  EXPECT_EQ(o.measured_value(), 160);
  const v1::LoggedOutcome p = Stored(plain.decision_id()).outcome();
  EXPECT_EQ(p.candidate_index(), 0);
  EXPECT_TRUE(p.followed());
  v1::GetLiveQualityResponse q;
  ASSERT_TRUE(log->Quality(absl::Hours(1), 10, &q).ok());
  EXPECT_EQ(q.overall().joined_reports(), 2u);
  EXPECT_NEAR(q.overall().mape(), (10.0 / 160 + 10.0 / 110) / 2, 1e-9);  // b estimated 150, a 100
}

TEST_F(DecisionLogTest, RetentionByAgeDeletesOldDecisionsAndTheirIdsThenJoinAsExpired) {
  options_.max_age = absl::Hours(24);
  auto log = Open();
  std::vector<std::string> old_ids;
  for (int i = 0; i < 10; ++i) {
    auto d = Decision("n1");
    old_ids.emplace_back(d->decision_id);
    ASSERT_TRUE(log->RecordDecision(std::move(d)));
  }
  log->Flush();
  EXPECT_EQ(StoredCount(), 10u);
  now_ += absl::ToInt64Milliseconds(absl::Hours(25));
  auto fresh = Decision("n1");
  const std::string fresh_id(fresh->decision_id);
  ASSERT_TRUE(log->RecordDecision(std::move(fresh)));
  log->RecordOutcome(Report(old_ids[3], "n1", "a", 100));
  log->Flush();
  EXPECT_EQ(StoredCount(), 1u);
  EXPECT_TRUE(store_->GetDecision(fresh_id)->has_value());
  EXPECT_EQ(log->joins(JoinResult::kExpired), 1u);
}

TEST_F(DecisionLogTest, RetentionByBytesKeepsTheLogWithinItsBoundAndKeepsTheNewest) {
  options_.max_bytes = 20000;
  auto log = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 400; ++i) {
    auto d = Decision("n1");
    ids.emplace_back(d->decision_id);
    ASSERT_TRUE(log->RecordDecision(std::move(d)));
    if (i % 50 == 49) log->Flush();
  }
  log->Flush();
  auto size = testing::StoredDecisionLogSize(*store_);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_LE(size->bytes, options_.max_bytes);
  EXPECT_GT(size->bytes, options_.max_bytes / 2);  // pruned in steps, not emptied
  EXPECT_LT(size->records, ids.size());
  EXPECT_TRUE(store_->GetDecision(ids.back())->has_value());
  EXPECT_FALSE(store_->GetDecision(ids.front())->has_value());
  // A pruned id made after the retention age cutoff is still told apart from one never made.
  log->RecordOutcome(Report(ids.front(), "n1", "a", 100));
  log->Flush();
  EXPECT_EQ(log->joins(JoinResult::kExpired), 1u);
}

TEST_F(DecisionLogTest, AFullQueueDropsAndCountsInsteadOfBlocking) {
  options_.queue_capacity = 8;
  absl::Notification taken, release;
  options_.on_take = [&] {
    if (!taken.HasBeenNotified()) taken.Notify();
    release.WaitForNotification();
  };
  auto log = Open();
  ASSERT_TRUE(log->RecordDecision(Decision("n1")));
  ASSERT_TRUE(taken.WaitForNotificationWithTimeout(absl::Seconds(30)));  // the writer holds it, the queue is empty
  int accepted = 0, dropped = 0;
  for (int i = 0; i < 100; ++i) (log->RecordDecision(Decision("n1")) ? accepted : dropped)++;
  EXPECT_EQ(accepted, 8);
  EXPECT_EQ(dropped, 92);
  EXPECT_FALSE(log->RecordOutcome(Report(MakeDecisionId(kT0, 1), "n1", "a", 1)));
  release.Notify();
  log->Flush();
  EXPECT_EQ(StoredCount(), 9u);
}

TEST_F(DecisionLogTest, OtherReplicasDecisionsWaitForRoomAndLeaveHalfTheQueueToThisReplica) {
  options_.queue_capacity = 8;
  options_.replica_id = "r1";
  absl::Notification taken, release;
  options_.on_take = [&] {
    if (!taken.HasBeenNotified()) taken.Notify();
    release.WaitForNotification();
  };
  auto log = Open();
  ASSERT_TRUE(log->RecordDecision(Decision("n1", 3, 0, "r1")));
  ASSERT_TRUE(taken.WaitForNotificationWithTimeout(absl::Seconds(30)));  // the writer holds it, the queue is empty
  const auto foreign = [&](int n) {
    std::vector<std::unique_ptr<DecisionEvent>> batch;
    for (int i = 0; i < n; ++i) batch.push_back(DecisionEvent::FromBytes(Decision("n2", 3, 0, "r2")->bytes));
    return batch;
  };
  ASSERT_TRUE(log->RecordForeignDecisions(foreign(3)));  // 3 of 8: within half
  // The next 3 would pass half the queue: the applier waits (on its own thread here) rather than drop them...
  absl::Notification second_in;
  std::vector<std::unique_ptr<DecisionEvent>> second = foreign(3);  // made here: the fixture's counter is not shared
  std::thread applier([&] {
    EXPECT_TRUE(log->RecordForeignDecisions(std::move(second)));
    second_in.Notify();
  });
  // ...while this replica's own decisions still find room, up to the whole queue.
  int accepted = 0;
  for (int i = 0; i < 10; ++i) accepted += log->RecordDecision(Decision("n1", 3, 0, "r1")) ? 1 : 0;
  EXPECT_EQ(accepted, 5);
  EXPECT_FALSE(second_in.HasBeenNotified());  // the queue has not been taken since: the applier is still waiting
  release.Notify();
  EXPECT_TRUE(second_in.WaitForNotificationWithTimeout(absl::Seconds(30)));
  applier.join();
  log->Flush();
  EXPECT_EQ(StoredCount(), 1u + 3 + 5 + 3);
}

TEST_F(DecisionLogTest, DriftWakesTheTrainerOnceWhenLiveErrorExceedsTheFactor) {
  options_.drift_window = 20;
  options_.drift_factor = 2.0;
  std::vector<double> wakes;
  DecisionLog::Hooks hooks;
  hooks.serving_version = [] { return uint64_t{5}; };
  hooks.holdout = [](uint64_t) {
    v1::ModelEvaluation e;
    e.set_holdout_mape(0.1);
    return std::optional<v1::ModelEvaluation>(e);
  };
  hooks.on_drift = [&](uint64_t version, double window_mape, double holdout) {
    EXPECT_EQ(version, 5u);
    EXPECT_DOUBLE_EQ(holdout, 0.1);
    wakes.push_back(window_mape);
  };
  auto log = Open(std::move(hooks));
  const auto run = [&](int n, uint64_t version, double measured) {
    for (int i = 0; i < n; ++i) {
      auto d = Decision("n1", version);
      const std::string id(d->decision_id);
      log->RecordDecision(std::move(d));
      log->RecordOutcome(Report(id, "n1", "a", measured));
    }
    log->Flush();
  };
  run(40, 5, 105);  // APE 0.048: within 2 x 0.1
  EXPECT_TRUE(wakes.empty());
  run(40, 4, 20);  // an older version's runs never count for the serving one
  EXPECT_TRUE(wakes.empty());
  run(30, 5, 50);  // APE 1.0: the window's mean passes 0.2 after a few
  ASSERT_EQ(wakes.size(), 1u);
  EXPECT_GT(wakes[0], 0.2);
  run(60, 5, 50);  // still drifting, but within the cool-down
  EXPECT_EQ(wakes.size(), 1u);
  now_ += absl::ToInt64Milliseconds(absl::Minutes(6));
  run(30, 5, 50);
  EXPECT_EQ(wakes.size(), 2u);
}

// Cluster mode: every replica holds every replica's decisions (server/cluster_decisions.h).
TEST_F(DecisionLogTest, AnotherReplicasDecisionJoinsTheRunThatArrivedBeforeIt) {
  options_.replica_id = "r1";
  options_.join_wait = absl::Seconds(30);
  std::vector<std::pair<std::string, std::string>> published;
  absl::Mutex published_mu;
  DecisionLog::Hooks hooks;
  hooks.on_logged = [&](std::vector<std::pair<std::string, std::string>> decisions) {
    absl::MutexLock lock(&published_mu);
    for (auto& d : decisions) published.push_back(std::move(d));
  };
  auto log = Open(std::move(hooks));
  // Made by r2 a moment before this replica's first decision (so before the oldest this log holds): its bytes as the
  // decision stream carries them.
  auto theirs = Decision("n2", 3, 0, "r2");
  const std::string their_id(theirs->decision_id);
  const std::string their_bytes = theirs->bytes;
  theirs.reset();
  auto own = Decision("n1", 3, 0, "r1");
  const std::string own_id(own->decision_id);
  ASSERT_TRUE(log->RecordDecision(std::move(own)));

  // The run came first (through the run stream): it waits, neither joined nor unknown nor expired.
  ASSERT_TRUE(log->RecordOutcome(Report(their_id, "n2", "a", 110)));
  log->Flush();
  EXPECT_EQ(log->joins(JoinResult::kJoined), 0u);
  EXPECT_EQ(log->joins(JoinResult::kUnknown), 0u);
  EXPECT_EQ(log->joins(JoinResult::kExpired), 0u);
  EXPECT_EQ(log->waiting_joins(), 1u);
  EXPECT_EQ(testing::Value(metrics_, "accelsel_decision_joins_waiting"), 1.0);

  std::unique_ptr<DecisionEvent> arrived = DecisionEvent::FromBytes(their_bytes);
  ASSERT_NE(arrived, nullptr);
  EXPECT_EQ(arrived->decision_id, their_id);
  EXPECT_EQ(arrived->replica_id, "r2");
  EXPECT_EQ(arrived->node_id, "n2");
  EXPECT_EQ(arrived->model_version, 3u);
  std::vector<std::unique_ptr<DecisionEvent>> batch;
  batch.push_back(std::move(arrived));
  ASSERT_TRUE(log->RecordForeignDecisions(std::move(batch)));
  log->Flush();
  EXPECT_EQ(log->joins(JoinResult::kJoined), 1u);
  EXPECT_EQ(log->waiting_joins(), 0u);
  const v1::LoggedDecision stored = Stored(their_id);
  EXPECT_EQ(stored.replica_id(), "r2");
  ASSERT_TRUE(stored.has_outcome());
  EXPECT_TRUE(stored.outcome().followed());
  EXPECT_DOUBLE_EQ(stored.outcome().measured_value(), 110);

  // Delivered again (the applier started over): nothing changes.
  batch.clear();
  batch.push_back(DecisionEvent::FromBytes(their_bytes));
  ASSERT_TRUE(log->RecordForeignDecisions(std::move(batch)));
  ASSERT_TRUE(log->RecordOutcome(Report(own_id, "n1", "a", 90)));
  log->Flush();
  EXPECT_EQ(log->joins(JoinResult::kJoined), 2u);
  EXPECT_EQ(log->joins(JoinResult::kRepeat), 0u);
  EXPECT_TRUE(Stored(their_id).has_outcome());

  // Only this replica's own decision was handed over for the stream, and only it counts in this replica's series.
  {
    absl::MutexLock lock(&published_mu);
    ASSERT_EQ(published.size(), 1u);
    EXPECT_EQ(published[0].first, own_id);
    EXPECT_EQ(DecisionEvent::FromBytes(published[0].second)->replica_id, "r1");
  }
  EXPECT_EQ(testing::Value(metrics_, "accelsel_live_decisions_total", {{"version", "3"}, {"explored", "false"}}), 1.0);
  EXPECT_EQ(testing::Value(metrics_, "accelsel_live_followed_total", {{"version", "3"}, {"followed", "true"}}), 1.0);

  // The quality answer covers both replicas' decisions, and names them.
  v1::GetLiveQualityResponse q;
  ASSERT_TRUE(log->Quality(absl::Hours(1), 10, &q).ok());
  EXPECT_EQ(q.overall().decisions(), 2u);
  EXPECT_EQ(q.overall().joined_reports(), 2u);
  EXPECT_EQ(q.replicas(), 2u);
  ASSERT_EQ(q.replica_ids_size(), 2);
  EXPECT_EQ(q.replica_ids(0), "r1");
  EXPECT_EQ(q.replica_ids(1), "r2");
}

TEST_F(DecisionLogTest, ARunWhoseDecisionNeverArrivesCountsAsUnknownAfterTheWait) {
  options_.replica_id = "r1";
  options_.join_wait = absl::Seconds(30);
  auto log = Open();
  ASSERT_TRUE(log->RecordOutcome(Report(MakeDecisionId(kT0, 7), "n1", "a", 100)));
  ASSERT_TRUE(log->RecordOutcome(Report("node-own-id:17", "n1", "a", 100)));  // not a decision id: unknown at once
  log->Flush();
  EXPECT_EQ(log->waiting_joins(), 1u);
  EXPECT_EQ(log->joins(JoinResult::kUnknown), 1u);
  now_ += 31'000;
  // The writer looks at the deadlines at least once a second.
  for (const absl::Time end = absl::Now() + absl::Seconds(10);
       (log->joins(JoinResult::kUnknown) < 2 || log->waiting_joins() > 0) && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(log->joins(JoinResult::kUnknown), 2u);
  EXPECT_EQ(log->waiting_joins(), 0u);
  EXPECT_EQ(log->joins(JoinResult::kJoined), 0u);

  // One still waiting when the log stops counts as unknown too.
  ASSERT_TRUE(log->RecordOutcome(Report(MakeDecisionId(now_.load(), 8), "n1", "a", 100)));
  log->Flush();
  EXPECT_EQ(log->waiting_joins(), 1u);
  log->Stop();
  EXPECT_EQ(log->joins(JoinResult::kUnknown), 3u);
}

TEST_F(DecisionLogTest, DisabledLogsNothing) {
  options_.enabled = false;
  auto log = Open();
  auto d = Decision("n1");
  const std::string id(d->decision_id);
  EXPECT_FALSE(log->RecordDecision(std::move(d)));
  EXPECT_FALSE(log->RecordOutcome(Report(id, "n1", "a", 1)));
  log->Flush();
  EXPECT_EQ(StoredCount(), 0u);
  v1::GetLiveQualityResponse q;
  ASSERT_TRUE(log->Quality(absl::Hours(1), 10, &q).ok());
  EXPECT_FALSE(q.decision_log_enabled());
}

}  // namespace
}  // namespace accelsel::server
