// Integration tests: the real server (callback gRPC, RocksDB in a temp folder) on 127.0.0.1:0, driven by a real
// gRPC client. Covers the catalogue, ReportRun acks (durable / duplicate / rejected), validation messages,
// statistics-based ranking, restart persistence and health.
#include <functional>
#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "proto/ack_ranges.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

using ::testing::HasSubstr;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(FreshDir("server-it")); }

  void StartServer(const std::string& dir) {
    dir_ = dir;
    server::ServerOptions options = TestOptions(dir_);
    if (configure_) configure_(&options);
    auto s = server::Server::Start(options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    conn_ = Connect(server_->port());
  }
  void Restart() {
    server_->Shutdown();
    server_.reset();
    StartServer(dir_);
  }

  void Register(const std::string& id) { ASSERT_TRUE(RegisterDefinition(MakeStrategy(id)).ok()); }
  grpc::Status RegisterDefinition(const v1::Strategy& strategy) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = strategy;
    v1::RegisterStrategyResponse resp;
    return conn_.selector->RegisterStrategy(&ctx, req, &resp);
  }

  // Sends `reports` on one stream and returns the acks (in arrival order) and the final status. `ack_ranges`: the
  // stream asks for ranged acks (metadata accelsel-ack-ranges: 1).
  std::vector<v1::RunAck> Report(const std::vector<v1::RunReport>& reports, grpc::Status* status = nullptr,
                                 bool ack_ranges = false) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (ack_ranges) ctx.AddMetadata(kAckRangesMetadata, "1");
    auto stream = conn_.selector->ReportRun(&ctx);
    for (const auto& r : reports) EXPECT_TRUE(stream->Write(r));
    stream->WritesDone();
    std::vector<v1::RunAck> acks;
    v1::RunAck ack;
    while (stream->Read(&ack)) acks.push_back(ack);
    grpc::Status st = stream->Finish();
    if (status) *status = st;
    EXPECT_TRUE(st.ok()) << st.error_message();
    return acks;
  }

  grpc::Status Select(const v1::SelectAcceleratorRequest& req, v1::SelectAcceleratorResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return conn_.selector->SelectAccelerator(&ctx, req, resp);
  }

  std::string dir_;
  std::function<void(server::ServerOptions*)> configure_;  // applied by StartServer
  std::unique_ptr<server::Server> server_;
  Connection conn_;
};

// One node alone in a context counts as at most 3 runs, however many it sends (poisoning resistance); a node the
// operator vouches for (--vouched_nodes) keeps every run, so its near-tie resolves and exploration fades.
TEST_F(ServerTest, VouchedNodesKeepTheirRunsFullWeight) {
  auto first_place_probability = [&](bool vouched) {
    server_->Shutdown();
    configure_ = [vouched](server::ServerOptions* o) {
      o->exploration_rate = 0.05;
      o->seed = 3;
      if (vouched) o->vouched_nodes = {"own-node"};
    };
    StartServer(FreshDir(vouched ? "server-vouched" : "server-unvouched"));
    Register("a");
    Register("b");
    std::vector<v1::RunReport> reports;
    for (int i = 0; i < 12; ++i) {
      const double jitter = 1 + 0.02 * ((i % 5) - 2);
      reports.push_back(MakeReport(absl::StrCat("a", i), "a", 16, 100 * jitter, "own-node"));
      reports.push_back(MakeReport(absl::StrCat("b", i), "b", 16, 102 * jitter, "own-node"));
    }
    EXPECT_EQ(Report(reports).size(), reports.size());
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(16);
    req.set_allow_exploration(true);
    v1::SelectAcceleratorResponse resp;
    EXPECT_TRUE(Select(req, &resp).ok());
    for (const auto& r : resp.recommendations()) {
      if (r.strategy().id() == "a") return r.selection_probability();
    }
    return -1.0;
  };
  const double unvouched = first_place_probability(false);
  const double vouched = first_place_probability(true);
  EXPECT_GT(unvouched, 0.5);
  EXPECT_GT(vouched, unvouched + 0.05) << "unvouched " << unvouched;
}

TEST_F(ServerTest, CatalogueRegisterListAndConflict) {
  Register("vllm");
  Register("vllm");  // same definition again: fine
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::RegisterStrategyRequest req;
  *req.mutable_strategy() = MakeStrategy("vllm");
  req.mutable_strategy()->mutable_components(0)->set_value("something-else");
  v1::RegisterStrategyResponse resp;
  grpc::Status st = conn_.selector->RegisterStrategy(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(st.error_message(), HasSubstr("strategy.id"));

  grpc::ClientContext ctx2;
  SetDeadline(&ctx2);
  v1::ListStrategiesResponse list;
  ASSERT_TRUE(conn_.selector->ListStrategies(&ctx2, {}, &list).ok());
  ASSERT_EQ(list.strategies_size(), 1);
  EXPECT_EQ(list.strategies(0).components(0).value(), "vllm");
}

TEST_F(ServerTest, ReportRunAcksDurableDuplicateAndRejectedWithoutEndingStream) {
  Register("a");
  v1::RunReport bad = MakeReport("r-bad", "a", 8, -5.0);
  v1::RunReport unknown = MakeReport("r-unknown", "no-such-strategy", 8, 10.0);
  auto acks = Report(
      {MakeReport("r1", "a", 8, 100), bad, unknown, MakeReport("r2", "a", 8, 110), MakeReport("r1", "a", 8, 100)});
  ASSERT_EQ(acks.size(), 5u);
  std::map<uint64_t, v1::RunAck> by_seq;
  for (const auto& a : acks) by_seq[a.sequence()] = a;
  EXPECT_EQ(by_seq[0].result(), v1::RunAck::RESULT_DURABLE);
  EXPECT_EQ(by_seq[1].result(), v1::RunAck::RESULT_REJECTED);
  EXPECT_THAT(by_seq[1].reason(), HasSubstr("metrics.e2e_latency_ms"));
  EXPECT_THAT(by_seq[1].reason(), HasSubstr(">= 0"));
  EXPECT_EQ(by_seq[2].result(), v1::RunAck::RESULT_REJECTED);
  EXPECT_THAT(by_seq[2].reason(), HasSubstr("strategy_id"));
  EXPECT_EQ(by_seq[3].result(), v1::RunAck::RESULT_DURABLE);
  EXPECT_EQ(by_seq[4].result(), v1::RunAck::RESULT_DUPLICATE);
  for (const auto& a : acks) EXPECT_EQ(a.count(), 0u) << "a stream that did not ask gets one plain ack per report";
  EXPECT_EQ(server_->core().store()->RunCount(), 2u);

  // A resend on a new stream is a duplicate and stores nothing.
  auto again = Report({MakeReport("r2", "a", 8, 110)});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].result(), v1::RunAck::RESULT_DUPLICATE);
  EXPECT_EQ(server_->core().store()->RunCount(), 2u);
}

// A stream that asks for ranged acks gets one RunAck per run of consecutive reports with the same result: every
// sequence is covered exactly once, with its own result; a rejection stands alone with its reason and does not end
// the stream; the run_id of a range is its first report's.
TEST_F(ServerTest, RangedAcksCoverEveryReportOnceWithRejectionsApart) {
  Register("a");
  std::vector<v1::RunReport> reports;
  std::map<uint64_t, v1::RunAck::Result> expected;
  for (int i = 0; i < 600; ++i) {
    const uint64_t seq = reports.size();
    if (i == 250) {
      reports.push_back(MakeReport("bad", "a", 8, -5.0));
      expected[seq] = v1::RunAck::RESULT_REJECTED;
    } else if (i >= 400 && i < 450) {  // resends of reports 0..49 of this stream
      reports.push_back(MakeReport(absl::StrCat("rr-", i - 400), "a", 8, 100));
      expected[seq] = v1::RunAck::RESULT_DUPLICATE;
    } else {
      reports.push_back(MakeReport(absl::StrCat("rr-", i), "a", 8, 100 + i % 7));
      expected[seq] = v1::RunAck::RESULT_DURABLE;
    }
  }
  grpc::Status status;
  auto acks = Report(reports, &status, /*ack_ranges=*/true);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::map<uint64_t, v1::RunAck::Result> got;
  size_t ranged = 0;
  for (const auto& a : acks) {
    ASSERT_GE(a.count(), 1u) << "a ranged stream's acks say how many reports they stand for";
    if (a.count() > 1) ++ranged;
    ASSERT_LT(a.sequence(), reports.size());
    EXPECT_EQ(a.run_id(), reports[a.sequence()].run_id()) << "a range names its first report";
    if (a.result() == v1::RunAck::RESULT_REJECTED) {
      EXPECT_EQ(a.count(), 1u);
      EXPECT_THAT(a.reason(), HasSubstr("metrics.e2e_latency_ms"));
    } else {
      EXPECT_TRUE(a.reason().empty()) << a.reason();
    }
    for (uint64_t seq = a.sequence(); seq < a.sequence() + a.count(); ++seq) {
      EXPECT_TRUE(got.emplace(seq, a.result()).second) << "sequence " << seq << " acknowledged twice";
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_GT(ranged, 0u);
  EXPECT_LT(acks.size(), reports.size() / 2) << "acks were not ranged";
  EXPECT_EQ(server_->core().store()->RunCount(), 600u - 1u - 50u);
}

TEST_F(ServerTest, ReportWithStrategyDefinitionRegistersIt) {
  v1::RunReport r = MakeReport("r-def", "", 4, 50);
  r.clear_strategy_id();
  *r.mutable_strategy() = MakeStrategy("sglang");
  auto acks = Report({r});
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE) << acks[0].reason();
  auto stored = server_->core().store()->GetRun("r-def");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->strategy_id(), "sglang");
}

// Reports on one stream are prepared in the order they were sent: a report may use a strategy whose definition
// an earlier report of the same stream carried. (Regression: the next read could start while the report carrying
// the definition was still being registered, so the one after it was rejected as an unknown strategy.)
TEST_F(ServerTest, StrategyDefinedByAnEarlierReportOnTheSameStreamIsKnown) {
  for (int round = 0; round < 3; ++round) {
    std::vector<v1::RunReport> reports;
    for (int s = 0; s < 150; ++s) {
      const std::string id = absl::StrCat("def-", round, "-", s);
      v1::RunReport first = MakeReport(absl::StrCat(id, "-0"), "", 1 + s % 32, 40 + s);
      first.clear_strategy_id();
      *first.mutable_strategy() = MakeStrategy(id);
      reports.push_back(std::move(first));
      for (int k = 1; k < 4; ++k) reports.push_back(MakeReport(absl::StrCat(id, "-", k), id, 1 + s % 32, 40 + s + k));
    }
    auto acks = Report(reports);
    ASSERT_EQ(acks.size(), reports.size());
    for (const auto& a : acks) {
      EXPECT_EQ(a.result(), v1::RunAck::RESULT_DURABLE) << "round " << round << " " << a.run_id() << ": " << a.reason();
    }
  }
  EXPECT_EQ(server_->core().store()->RunCount(), 3u * 150u * 4u);
}

TEST_F(ServerTest, SelectRanksByStoredMediansWithEvidence) {
  Register("fast");
  Register("slow");
  Register("never-run");
  std::vector<v1::RunReport> reports;
  for (int i = 0; i < 5; ++i) {
    reports.push_back(MakeReport(absl::StrCat("f", i), "fast", 16, 100 + i));
    reports.push_back(MakeReport(absl::StrCat("s", i), "slow", 16, 200 + i));
  }
  Report(reports);

  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(16);
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(Select(req, &resp).ok());
  ASSERT_EQ(resp.recommendations_size(), 3);
  EXPECT_FALSE(resp.decision_id().empty());
  const auto& first = resp.recommendations(0);
  EXPECT_EQ(first.strategy().id(), "fast");
  EXPECT_EQ(first.rank(), 1u);
  EXPECT_EQ(first.evidence_layer(), v1::EVIDENCE_LAYER_OBSERVED);
  EXPECT_EQ(first.evidence_count(), 5u);
  EXPECT_DOUBLE_EQ(first.expected_value(), 102.0);  // median of 100..104
  EXPECT_LE(first.interval().low(), 102.0);
  EXPECT_GE(first.interval().high(), 102.0);
  EXPECT_EQ(resp.recommendations(1).strategy().id(), "slow");
  EXPECT_DOUBLE_EQ(resp.recommendations(1).expected_value(), 202.0);
  // No runs at all for this strategy: said honestly.
  EXPECT_EQ(resp.recommendations(2).strategy().id(), "never-run");
  EXPECT_EQ(resp.recommendations(2).evidence_layer(), v1::EVIDENCE_LAYER_UNKNOWN);
  EXPECT_EQ(resp.recommendations(2).evidence_count(), 0u);
  EXPECT_FALSE(resp.recommendations(2).meets_constraints());

  // Throughput is maximised: the same order, from the throughput medians.
  req.set_objective(v1::OBJECTIVE_THROUGHPUT);
  v1::SelectAcceleratorResponse thr;
  ASSERT_TRUE(Select(req, &thr).ok());
  EXPECT_EQ(thr.recommendations(0).strategy().id(), "fast");
  EXPECT_GT(thr.recommendations(0).expected_value(), thr.recommendations(1).expected_value());

  // A latency SLO between the two: the slow one does not meet it.
  req.set_objective(v1::OBJECTIVE_E2E_LATENCY);
  req.mutable_constraints()->set_max_latency_ms(150);
  req.add_candidate_ids("slow");
  req.add_candidate_ids("fast");
  v1::SelectAcceleratorResponse slo;
  ASSERT_TRUE(Select(req, &slo).ok());
  ASSERT_EQ(slo.recommendations_size(), 2);
  EXPECT_TRUE(slo.recommendations(0).meets_constraints());
  EXPECT_FALSE(slo.recommendations(1).meets_constraints());
  ASSERT_EQ(slo.recommendations(1).violated_size(), 1);
  EXPECT_EQ(slo.recommendations(1).violated(0), "max_latency_ms");

  // With an SLO, a candidate without any estimate cannot be promised to meet it.
  req.add_candidate_ids("never-run");
  v1::SelectAcceleratorResponse unknown;
  ASSERT_TRUE(Select(req, &unknown).ok());
  ASSERT_EQ(unknown.recommendations_size(), 3);
  EXPECT_EQ(unknown.recommendations(0).strategy().id(), "fast");
  const auto& last = unknown.recommendations(2);
  EXPECT_EQ(last.evidence_layer(), v1::EVIDENCE_LAYER_UNKNOWN);
  EXPECT_FALSE(last.meets_constraints());
  // Never run on "Test H100", where other strategies have runs; and no estimate for the SLO.
  ASSERT_EQ(last.violated_size(), 2);
  EXPECT_EQ(last.violated(0), "unverified_on_accelerator");
  EXPECT_EQ(last.violated(1), "no_evidence");

  // A workload never run: the nearest observed workload of the same model and hardware answers, as a prior.
  v1::SelectAcceleratorRequest other;
  *other.mutable_context() = MakeContext(32);
  other.set_top_k(1);
  v1::SelectAcceleratorResponse prior;
  ASSERT_TRUE(Select(other, &prior).ok());
  ASSERT_EQ(prior.recommendations_size(), 1);
  EXPECT_EQ(prior.recommendations(0).evidence_layer(), v1::EVIDENCE_LAYER_PRIOR);
  EXPECT_EQ(prior.recommendations(0).strategy().id(), "fast");
}

// The engine's component plus one that changes the model's outputs (quantised weights).
v1::Strategy LossyStrategy(const std::string& id) {
  v1::Strategy s = MakeStrategy(id);
  auto* weights = s.add_components();
  weights->set_method("weights");
  weights->set_value("q4_0");
  weights->set_lossy(true);
  return s;
}

TEST_F(ServerTest, LossyFlagRoundTripsAndExcludedLossyStrategiesAreInfeasible) {
  Register("f16");
  ASSERT_TRUE(RegisterDefinition(LossyStrategy("q4")).ok());
  ASSERT_TRUE(RegisterDefinition(LossyStrategy("q4")).ok());  // the same definition again
  v1::Strategy flipped = LossyStrategy("q4");
  flipped.mutable_components(1)->set_lossy(false);
  EXPECT_EQ(RegisterDefinition(flipped).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  grpc::ClientContext list_ctx;
  SetDeadline(&list_ctx);
  v1::ListStrategiesResponse list;
  ASSERT_TRUE(conn_.selector->ListStrategies(&list_ctx, {}, &list).ok());
  ASSERT_EQ(list.strategies_size(), 2);
  EXPECT_EQ(list.strategies(0).id(), "f16");
  EXPECT_FALSE(list.strategies(0).components(0).lossy());
  EXPECT_EQ(list.strategies(1).id(), "q4");
  ASSERT_EQ(list.strategies(1).components_size(), 2);
  EXPECT_FALSE(list.strategies(1).components(0).lossy());
  EXPECT_TRUE(list.strategies(1).components(1).lossy());

  std::vector<v1::RunReport> reports;
  for (int i = 0; i < 5; ++i) {
    reports.push_back(MakeReport(absl::StrCat("f", i), "f16", 16, 200 + i));
    reports.push_back(MakeReport(absl::StrCat("q", i), "q4", 16, 100 + i));
  }
  Report(reports);
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(16);
  v1::SelectAcceleratorResponse allowed;
  ASSERT_TRUE(Select(req, &allowed).ok());
  ASSERT_EQ(allowed.recommendations_size(), 2);
  EXPECT_EQ(allowed.recommendations(0).strategy().id(), "q4");
  EXPECT_TRUE(allowed.recommendations(0).meets_constraints());
  EXPECT_TRUE(allowed.recommendations(0).strategy().components(1).lossy());  // the definition as registered

  req.mutable_constraints()->set_exclude_lossy(true);
  v1::SelectAcceleratorResponse excluded;
  ASSERT_TRUE(Select(req, &excluded).ok());
  ASSERT_EQ(excluded.recommendations_size(), 2);
  EXPECT_EQ(excluded.recommendations(0).strategy().id(), "f16");
  EXPECT_TRUE(excluded.recommendations(0).meets_constraints());
  const auto& lossy = excluded.recommendations(1);
  EXPECT_EQ(lossy.strategy().id(), "q4");
  EXPECT_FALSE(lossy.meets_constraints());
  ASSERT_EQ(lossy.violated_size(), 1);
  EXPECT_EQ(lossy.violated(0), "exclude_lossy");
  EXPECT_EQ(lossy.evidence_layer(), v1::EVIDENCE_LAYER_OBSERVED);  // still estimated, only infeasible
}

// With the server exploring as much as it can (--exploration_rate 1) and nothing known, every candidate is a
// plausible winner; a caller that excludes lossy strategies still never gets one placed first.
TEST(ServerExplorationTest, ExcludedLossyStrategiesAreNeverPlacedFirst) {
  auto options = TestOptions(FreshDir("server-explore-lossy"));
  options.exploration_rate = 1.0;
  options.seed = 17;
  auto server = server::Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  Connection conn = Connect((*server)->port());
  for (const v1::Strategy& s : {MakeStrategy("a"), MakeStrategy("b"), LossyStrategy("q4"), LossyStrategy("q8")}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = s;
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }
  auto firsts = [&](bool exclude_lossy) {
    std::map<std::string, int> first;
    for (int i = 0; i < 200; ++i) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      v1::SelectAcceleratorRequest req;
      *req.mutable_context() = MakeContext(16);
      req.set_allow_exploration(true);
      req.mutable_constraints()->set_exclude_lossy(exclude_lossy);
      v1::SelectAcceleratorResponse resp;
      EXPECT_TRUE(conn.selector->SelectAccelerator(&ctx, req, &resp).ok());
      if (resp.recommendations_size() == 0) continue;
      ++first[resp.recommendations(0).strategy().id()];
      for (const auto& r : resp.recommendations()) {
        if (exclude_lossy && r.strategy().id()[0] == 'q') {
          EXPECT_EQ(r.selection_probability(), 0.0) << r.strategy().id();
        }
      }
    }
    return first;
  };
  const std::map<std::string, int> mixed = firsts(false);
  EXPECT_GT(mixed.count("q4") + mixed.count("q8"), 0u) << "lossy ones are explored when allowed";
  const std::map<std::string, int> excluded = firsts(true);
  EXPECT_EQ(excluded.count("q4"), 0u);
  EXPECT_EQ(excluded.count("q8"), 0u);
  EXPECT_GT(excluded.count("a"), 0u);
  EXPECT_GT(excluded.count("b"), 0u);
  (*server)->Shutdown();
}

TEST_F(ServerTest, FailuresCountAgainstAStrategy) {
  Register("fragile");
  Register("steady");
  std::vector<v1::RunReport> reports;
  for (int i = 0; i < 4; ++i) {
    v1::RunReport oom = MakeReport(absl::StrCat("o", i), "fragile", 16, 1);
    oom.set_status(v1::RUN_STATUS_OOM);
    oom.clear_metrics();
    reports.push_back(oom);
    reports.push_back(MakeReport(absl::StrCat("t", i), "steady", 16, 300));
  }
  reports.push_back(MakeReport("fragile-ok", "fragile", 16, 50));
  Report(reports);
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(16);
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(Select(req, &resp).ok());
  ASSERT_EQ(resp.recommendations_size(), 2);
  // "fragile" is faster when it works, but fails most of the time: ranked after the one that meets constraints.
  EXPECT_EQ(resp.recommendations(0).strategy().id(), "steady");
  EXPECT_EQ(resp.recommendations(1).strategy().id(), "fragile");
  EXPECT_FALSE(resp.recommendations(1).meets_constraints());
  EXPECT_GT(resp.recommendations(1).failure_probability(), 0.5);
}

TEST_F(ServerTest, SelectValidationNamesFieldAndRule) {
  Register("a");
  struct Case {
    std::function<void(v1::SelectAcceleratorRequest*)> mutate;
    std::string expect;
  };
  std::vector<Case> cases = {
      {[](auto* r) { r->clear_context(); }, "context: is required"},
      {[](auto* r) { r->mutable_context()->mutable_model()->clear_name(); }, "context.model.name: is required"},
      {[](auto* r) { r->mutable_context()->mutable_workload()->set_batch_size(0); }, "context.workload.batch_size"},
      {[](auto* r) { r->mutable_context()->mutable_hardware()->set_count(0); }, "context.hardware.count"},
      {[](auto* r) { r->mutable_context()->mutable_hardware()->set_memory_gb(std::nan("")); },
       "context.hardware.memory_gb: must be finite"},
      {[](auto* r) { r->add_candidate_ids("missing"); }, "candidate_ids[0]: unknown strategy"},
      {[](auto* r) {
         r->add_candidate_ids("a");
         r->add_candidate_ids("a");
       },
       "candidate_ids[1]: duplicate"},
      {[](auto* r) { r->add_candidate_ids(""); }, "candidate_ids[0]: is required"},
      {[](auto* r) { r->add_candidate_ids(std::string(200, 'x')); }, "at most 128 characters"},
      {[](auto* r) { r->set_top_k(100000); }, "top_k: must be <= 256"},
      {[](auto* r) { r->mutable_constraints()->set_max_latency_ms(-1); }, "constraints.max_latency_ms"},
      {[](auto* r) {
         for (int i = 0; i < 100; ++i) r->mutable_context()->add_embedding(1.0f);
       },
       "context.embedding: must have at most 64"},
      {[](auto* r) { r->mutable_context()->mutable_model()->set_name(std::string(2 << 20, 'm')); },
       "request: must be at most"},
  };
  for (const auto& c : cases) {
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = MakeContext(8);
    c.mutate(&req);
    v1::SelectAcceleratorResponse resp;
    grpc::Status st = Select(req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.expect;
    EXPECT_THAT(st.error_message(), HasSubstr(c.expect));
    // The same as google.rpc.BadRequest in the status details (grpc-status-details-bin): one field violation whose
    // field and description make up the message.
    google::rpc::Status details;
    ASSERT_TRUE(details.ParseFromString(st.error_details())) << c.expect;
    EXPECT_EQ(details.code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(details.message(), st.error_message());
    ASSERT_EQ(details.details_size(), 1) << c.expect;
    EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.BadRequest");
    google::rpc::BadRequest bad;
    ASSERT_TRUE(details.details(0).UnpackTo(&bad));
    ASSERT_EQ(bad.field_violations_size(), 1) << c.expect;
    const auto& violation = bad.field_violations(0);
    EXPECT_EQ(absl::StrCat(violation.field(), ": ", violation.description()), st.error_message());
    if (const size_t colon = c.expect.find(": "); colon != std::string::npos) {
      EXPECT_EQ(violation.field(), c.expect.substr(0, colon));
    }
  }
}

TEST_F(ServerTest, EmptyCatalogueIsAFailedPrecondition) {
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(8);
  v1::SelectAcceleratorResponse resp;
  EXPECT_EQ(Select(req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServerTest, RunsCatalogueAndStatisticsSurviveRestart) {
  Register("fast");
  Register("slow");
  Report({MakeReport("p1", "fast", 16, 100), MakeReport("p2", "slow", 16, 300), MakeReport("p3", "fast", 16, 120)});
  Restart();
  EXPECT_EQ(server_->core().store()->RunCount(), 3u);
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(16);
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(Select(req, &resp).ok());
  ASSERT_EQ(resp.recommendations_size(), 2);
  EXPECT_EQ(resp.recommendations(0).strategy().id(), "fast");
  EXPECT_DOUBLE_EQ(resp.recommendations(0).expected_value(), 110.0);
  EXPECT_EQ(resp.recommendations(0).evidence_count(), 2u);
  auto acks = Report({MakeReport("p1", "fast", 16, 100)});
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DUPLICATE);
}

TEST_F(ServerTest, ManyReportsOnOneStreamAllAcknowledged) {
  Register("a");
  std::vector<v1::RunReport> reports;
  for (int i = 0; i < 5000; ++i) reports.push_back(MakeReport(absl::StrCat("bulk-", i), "a", 1 + i % 64, 10 + i % 7));
  auto acks = Report(reports);
  ASSERT_EQ(acks.size(), reports.size());
  std::vector<bool> seen(reports.size(), false);
  for (const auto& a : acks) {
    ASSERT_LT(a.sequence(), reports.size());
    EXPECT_FALSE(seen[a.sequence()]);
    seen[a.sequence()] = true;
    EXPECT_EQ(a.result(), v1::RunAck::RESULT_DURABLE);
    EXPECT_EQ(a.run_id(), reports[a.sequence()].run_id());
  }
  EXPECT_EQ(server_->core().store()->RunCount(), reports.size());
}

// A ranged stream cancelled with reports still in flight: the server drops its queued ranges, still finishes the
// call (the restart below waits for every stream), and a resend on a new ranged stream gets every report
// acknowledged exactly once, DURABLE or DUPLICATE, with each run stored once.
TEST_F(ServerTest, CancelledRangedStreamLosesNothingOnResend) {
  Register("a");
  std::vector<v1::RunReport> reports;
  for (int i = 0; i < 2000; ++i) reports.push_back(MakeReport(absl::StrCat("cx-", i), "a", 1 + i % 64, 10 + i % 7));
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ctx.AddMetadata(kAckRangesMetadata, "1");
    auto stream = conn_.selector->ReportRun(&ctx);
    for (const auto& r : reports) {
      if (!stream->Write(r)) break;
    }
    v1::RunAck ack;
    ASSERT_TRUE(stream->Read(&ack));  // some reports are in, more are in flight
    ctx.TryCancel();
    while (stream->Read(&ack)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  grpc::Status status;
  auto acks = Report(reports, &status, /*ack_ranges=*/true);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<int> covered(reports.size(), 0);
  for (const auto& a : acks) {
    ASSERT_TRUE(a.result() == v1::RunAck::RESULT_DURABLE || a.result() == v1::RunAck::RESULT_DUPLICATE)
        << a.run_id() << ": " << a.reason();
    for (uint64_t seq = a.sequence(); seq < a.sequence() + a.count(); ++seq) {
      ASSERT_LT(seq, reports.size());
      ++covered[seq];
    }
  }
  for (size_t i = 0; i < covered.size(); ++i) ASSERT_EQ(covered[i], 1) << "sequence " << i;
  EXPECT_EQ(server_->core().store()->RunCount(), reports.size());
  Restart();  // waits for the cancelled stream's reactor: it must have finished
  EXPECT_EQ(server_->core().store()->RunCount(), reports.size());
}

TEST_F(ServerTest, HealthServiceReportsServing) {
  auto stub = grpc::health::v1::Health::NewStub(conn_.channel);
  for (const std::string service : {"", "accelsel.v1.AcceleratorSelector"}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(stub->Check(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

}  // namespace
}  // namespace accelsel::testing
