// The learned meta-model inside the running service: learning a crossover from streamed telemetry, intervals that
// cover the truth at about their nominal rate, promotion rules (corrupted labels, pin, rollback), persistence
// across restarts, corrupt blobs, unseen contexts, exploration, and selects racing with retrains; and the loop that
// judges it live: decisions logged and joined with reports, live quality, drift wake-ups, the bounded decision log.
#include <atomic>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/robust.h"
#include "proto/convert.h"
#include "server/model_manager.h"
#include "tests/server/test_server.h"
#include "tests/test_util/decision_log_size.h"
#include "tests/test_util/http.h"

namespace accelsel::testing {
namespace {

// Ground truth of the synthetic network: strategy "small" is faster below batch 16, "large" above.
double TrueLatencyMs(const std::string& strategy, uint32_t batch, uint32_t prompt, double params_b) {
  const double scale = (prompt / 512.0) * (params_b / 7.0);
  const double base = strategy == "small" ? 20.0 * batch : 160.0 + 10.0 * batch;
  return base * scale;
}

v1::TaskContext SyntheticContext(uint32_t batch, uint32_t prompt, double params_b,
                                 const std::string& accel = "Syn GPU") {
  v1::TaskContext c = MakeContext(batch, absl::StrCat("syn/model-", params_b, "b"), accel);
  c.mutable_model()->set_parameters_b(params_b);
  c.mutable_model()->set_layers(params_b > 30 ? 80 : 32);
  c.mutable_model()->set_hidden_size(params_b > 30 ? 8192 : 4096);
  c.mutable_workload()->set_prompt_tokens(prompt);
  c.mutable_workload()->set_output_tokens(prompt);
  return c;
}

class ModelLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("model-lifecycle");
    Start();
  }
  void Start() {
    auto opts = TestOptions(dir_);
    opts.exploration_rate = exploration_rate_;
    if (adjust_options_) adjust_options_(opts);
    auto s = server::Server::Start(opts);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    conn_ = Connect(server_->port());
  }
  void Restart() {
    server_->Shutdown();
    server_.reset();
    Start();
  }
  server::ModelManager& models() { return server_->core().models(); }

  void Register(const std::string& id) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = MakeStrategy(id);
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE(conn_.selector->RegisterStrategy(&ctx, req, &resp).ok());
  }

  void Stream(const std::vector<v1::RunReport>& reports) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    auto stream = conn_.selector->ReportRun(&ctx);
    for (const auto& r : reports) ASSERT_TRUE(stream->Write(r));
    stream->WritesDone();
    v1::RunAck ack;
    size_t n = 0;
    while (stream->Read(&ack)) {
      ASSERT_NE(ack.result(), v1::RunAck::RESULT_REJECTED) << ack.reason();
      ++n;
    }
    ASSERT_TRUE(stream->Finish().ok());
    ASSERT_EQ(n, reports.size());
  }

  // Telemetry of the synthetic network with multiplicative noise (sigma in log space).
  std::vector<v1::RunReport> Telemetry(const std::string& tag, double sigma, uint64_t seed, int reps = 3,
                                       bool corrupt_training_labels = false) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0.0, sigma);
    std::uniform_real_distribution<double> garbage(1.0, 5000.0);
    std::vector<v1::RunReport> out;
    int i = 0;
    for (double params : {7.0, 13.0, 70.0}) {
      for (uint32_t prompt : {128u, 256u, 512u, 1024u}) {
        for (uint32_t batch : {1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u}) {
          for (const std::string s : {"small", "large"}) {
            for (int rep = 0; rep < reps; ++rep) {
              v1::RunReport r;
              r.set_run_id(absl::StrCat(tag, "-", i++));
              r.set_node_id(absl::StrCat("node-", rep));
              *r.mutable_context() = SyntheticContext(batch, prompt, params);
              r.set_strategy_id(s);
              r.set_status(v1::RUN_STATUS_OK);
              double v = TrueLatencyMs(s, batch, prompt, params) * std::exp(noise(rng));
              if (corrupt_training_labels) {
                model::TaskContext plain;
                plain.model.name = r.context().model().name();
                plain.hardware.accelerator = r.context().hardware().accelerator();
                plain.hardware.count = r.context().hardware().count();
                plain.workload.prompt_tokens = prompt;
                plain.workload.output_tokens = prompt;
                plain.workload.batch_size = batch;
                if (server::ModelManager::InHoldout(plain)) continue;  // the held-out contexts stay clean
                v = garbage(rng);
              }
              r.mutable_metrics()->set_e2e_latency_ms(v);
              out.push_back(std::move(r));
            }
          }
        }
      }
    }
    return out;
  }

  v1::SelectAcceleratorResponse Select(const v1::TaskContext& ctx, bool explore = false, const std::string& node = "") {
    grpc::ClientContext cctx;
    SetDeadline(&cctx);
    v1::SelectAcceleratorRequest req;
    *req.mutable_context() = ctx;
    req.set_allow_exploration(explore);
    req.set_node_id(node);
    v1::SelectAcceleratorResponse resp;
    grpc::Status st = conn_.selector->SelectAccelerator(&cctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  void TrainGood() {
    Register("small");
    Register("large");
    Stream(Telemetry("good", 0.1, 1));
    auto info = models().RetrainNow();
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_TRUE(info->promoted()) << info->note();
  }

  double exploration_rate_ = 0.05;
  std::function<void(server::ServerOptions&)> adjust_options_;
  std::string dir_;
  std::unique_ptr<server::Server> server_;
  Connection conn_;
};

TEST_F(ModelLifecycleTest, LearnsTheCrossoverAndIntervalsCoverTheTruth) {
  TrainGood();
  // Contexts never run: prompt lengths and a model size between the observed ones.
  int correct = 0, total = 0, covered = 0, samples = 0;
  std::mt19937_64 rng(99);
  std::normal_distribution<double> noise(0.0, 0.1);
  for (uint32_t prompt : {192u, 384u, 768u}) {
    for (double params : {7.0, 13.0}) {
      for (uint32_t batch : {1u, 3u, 6u, 24u, 48u, 100u}) {
        auto resp = Select(SyntheticContext(batch, prompt, params));
        ASSERT_EQ(resp.recommendations_size(), 2);
        EXPECT_GE(resp.model_version(), 1u);
        const auto& top = resp.recommendations(0);
        EXPECT_EQ(top.evidence_layer(), v1::EVIDENCE_LAYER_MODEL);
        const std::string want = batch < 16 ? "small" : "large";
        correct += top.strategy().id() == want;
        ++total;
        for (const auto& rec : resp.recommendations()) {
          EXPECT_LE(rec.interval().low(), rec.expected_value());
          EXPECT_GE(rec.interval().high(), rec.expected_value());
          for (int k = 0; k < 5; ++k) {
            const double truth = TrueLatencyMs(rec.strategy().id(), batch, prompt, params) * std::exp(noise(rng));
            covered += truth >= rec.interval().low() && truth <= rec.interval().high();
            ++samples;
          }
        }
      }
    }
  }
  // Near the crossover (batch 6 and 24 are within 1.5x of a tie) an unseen context may still tip the wrong way.
  EXPECT_GE(correct, total - 3) << "switch point learned in " << correct << " of " << total << " unseen contexts";
  const double coverage = static_cast<double>(covered) / samples;
  // Nominal 80%: unseen contexts add model error to the noise, so allow a band around it.
  EXPECT_GE(coverage, 0.6) << coverage;
  EXPECT_LE(coverage, 0.98) << coverage;
  // Around the crossover itself.
  EXPECT_EQ(Select(SyntheticContext(8, 640, 7)).recommendations(0).strategy().id(), "small");
  EXPECT_EQ(Select(SyntheticContext(32, 640, 7)).recommendations(0).strategy().id(), "large");
}

TEST_F(ModelLifecycleTest, UnseenModelAndAcceleratorStillGetALabelledRanking) {
  TrainGood();
  auto resp = Select(SyntheticContext(4, 512, 34, "Brand New Accelerator X9"));
  ASSERT_EQ(resp.recommendations_size(), 2);
  for (const auto& r : resp.recommendations()) {
    EXPECT_EQ(r.evidence_layer(), v1::EVIDENCE_LAYER_MODEL);
    EXPECT_GT(r.expected_value(), 0);
    EXPECT_EQ(r.evidence_count(), 0u);
  }
}

TEST_F(ModelLifecycleTest, CandidateTrainedOnCorruptedLabelsIsNotPromoted) {
  TrainGood();
  const uint64_t serving = models().Serving()->info.version();
  // A flood of garbage latencies for the training contexts; held-out contexts stay honest.
  Stream(Telemetry("corrupt", 0.1, 2, 6, /*corrupt_training_labels=*/true));
  auto info = models().RetrainNow();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->promoted()) << info->note();
  EXPECT_GT(info->evaluation().holdout_mape(), info->evaluation().baseline_mape());
  EXPECT_EQ(models().Serving()->info.version(), serving);
  // Every version is persisted with its evaluation, promoted or not.
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::GetModelInfoResponse mi;
  ASSERT_TRUE(conn_.selector->GetModelInfo(&ctx, {}, &mi).ok());
  ASSERT_EQ(mi.history_size(), 2);
  EXPECT_EQ(mi.history(0).version(), info->version());
  EXPECT_FALSE(mi.history(0).promoted());
  EXPECT_EQ(mi.serving_version(), serving);
}

// The held-out runs are capped by node share like the training runs: a node flooding held-out contexts with runs
// (here honest ones) must not outweigh the other nodes when candidates are scored, and so decide promotion.
TEST_F(ModelLifecycleTest, HeldOutRunsAreCappedByNodeShareToo) {
  Register("small");
  Register("large");
  std::vector<v1::RunReport> reports = Telemetry("good", 0.1, 1);
  const size_t honest = reports.size();
  for (size_t i = 0; i < honest; ++i) {
    const v1::RunReport base = reports[i];
    if (base.node_id() != "node-0" || !server::ModelManager::InHoldout(FromProto(base).context)) continue;
    for (int k = 0; k < 15; ++k) {
      v1::RunReport r = base;
      r.set_run_id(absl::StrCat("flood-", i, "-", k));
      r.set_node_id("flood");
      reports.push_back(std::move(r));
    }
  }
  ASSERT_GT(reports.size(), honest);
  Stream(reports);
  std::vector<model::RunRecord> holdout;
  for (const auto& r : reports) {
    model::RunRecord rec = FromProto(r);
    if (server::ModelManager::InHoldout(rec.context)) holdout.push_back(std::move(rec));
  }
  const size_t all_held_out = holdout.size();
  const size_t capped = model::ThinByNodeShare(std::move(holdout)).size();
  ASSERT_LT(capped, all_held_out / 2);  // most of the flood goes
  auto info = models().RetrainNow();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->evaluation().holdout_rows(), capped);
}

TEST_F(ModelLifecycleTest, PinnedVersionStaysAndRestartServesTheSameVersion) {
  TrainGood();
  const uint64_t v1_version = models().Serving()->info.version();
  Stream(Telemetry("more", 0.1, 3, 1));
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    v1::PinModelRequest req;
    req.set_version(v1_version);
    v1::PinModelResponse resp;
    ASSERT_TRUE(conn_.admin->PinModel(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.serving_version(), v1_version);
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 300);
    v1::RetrainResponse resp;
    ASSERT_TRUE(conn_.admin->Retrain(&ctx, {}, &resp).ok());
    EXPECT_FALSE(resp.candidate().promoted());
    EXPECT_THAT(resp.candidate().note(), ::testing::HasSubstr("pinned"));
  }
  EXPECT_EQ(models().Serving()->info.version(), v1_version);
  Restart();
  ASSERT_NE(models().Serving(), nullptr);
  EXPECT_EQ(models().Serving()->info.version(), v1_version);
  EXPECT_EQ(Select(SyntheticContext(2, 300, 7)).model_version(), v1_version);
  // Unpinning serves the newest promoted version again (here still v1: the pinned retrain was not promoted).
  auto unpinned = models().Pin(0);
  ASSERT_TRUE(unpinned.ok());
  EXPECT_EQ(*unpinned, v1_version);
  // Pinning a version that does not exist is NOT_FOUND.
  EXPECT_EQ(models().Pin(999).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelLifecycleTest, RollbackServesThePreviousPromotedVersion) {
  TrainGood();
  const uint64_t first = models().Serving()->info.version();
  Stream(Telemetry("more", 0.1, 4, 2));
  auto second = models().RetrainNow();
  ASSERT_TRUE(second.ok());
  // Serve the second version whether or not it won its comparison (pinning), then roll back.
  ASSERT_TRUE(models().Pin(second->version()).ok());
  ASSERT_EQ(models().Serving()->info.version(), second->version());
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 60);
  v1::RollbackModelResponse resp;
  ASSERT_TRUE(conn_.admin->RollbackModel(&ctx, {}, &resp).ok());
  EXPECT_EQ(resp.serving_version(), first);
  EXPECT_EQ(models().Serving()->info.version(), first);
}

TEST_F(ModelLifecycleTest, CorruptBlobIsRefusedAndThePreviousVersionServes) {
  TrainGood();
  const uint64_t first = models().Serving()->info.version();
  Stream(Telemetry("more", 0.1, 5, 2));
  auto second = models().RetrainNow();
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(models().Pin(second->version()).ok());  // serving, whether or not it won its comparison
  // Damage the serving version's blob on disk (through the store), then restart.
  auto* store = server_->core().store();
  auto blob = store->GetModel(second->version());
  ASSERT_TRUE(blob.ok());
  blob->blob[blob->blob.size() / 2] ^= 0x5a;
  ASSERT_TRUE(store->PutModel(*blob).ok());
  Restart();
  ASSERT_NE(models().Serving(), nullptr);
  EXPECT_EQ(models().Serving()->info.version(), first);
  EXPECT_EQ(Select(SyntheticContext(2, 300, 7)).model_version(), first);
}

// Selects from several threads while the model is retrained again and again (in-process and through the Retrain
// RPC) and new telemetry streams in: no call fails, every answer is complete, and each caller sees the serving
// version only move forward. Run under TSan by `make test-tsan` (no data race between the swap of the serving
// model, the statistics updated by ingest, and the readers).
TEST_F(ModelLifecycleTest, ConcurrentSelectsDuringRepeatedRetrainsNeverFail) {
  TrainGood();
  const uint64_t first_version = models().Serving()->info.version();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, went_back{0};
  absl::Mutex versions_mu;
  std::set<uint64_t> versions_seen;
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t) {
    callers.emplace_back([&, t] {
      auto conn = Connect(server_->port());
      uint32_t i = 0;
      uint64_t last_version = 0;
      std::set<uint64_t> mine;
      while (!stop.load()) {
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        v1::SelectAcceleratorRequest req;
        *req.mutable_context() = SyntheticContext(1 + (i++ % 100), 128 + 64 * t, 7);
        v1::SelectAcceleratorResponse resp;
        grpc::Status st = conn.selector->SelectAccelerator(&ctx, req, &resp);
        const bool complete = st.ok() && resp.recommendations_size() == 2 && !resp.decision_id().empty() &&
                              resp.recommendations(0).has_interval();
        (complete ? ok : failed)++;
        if (!st.ok()) continue;
        if (resp.model_version() < last_version) ++went_back;
        last_version = resp.model_version();
        mine.insert(resp.model_version());
      }
      absl::MutexLock l(&versions_mu);
      versions_seen.insert(mine.begin(), mine.end());
    });
  }
  // New telemetry keeps arriving while training runs (the ingest path updates the statistics the selects read).
  std::thread reporter([&] {
    auto conn = Connect(server_->port());
    for (int batch = 0; batch < 3 && !stop.load(); ++batch) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 120);
      auto stream = conn.selector->ReportRun(&ctx);
      for (const auto& r : Telemetry(absl::StrCat("live-", batch), 0.1, 100 + batch, 1)) {
        if (!stream->Write(r)) break;
      }
      stream->WritesDone();
      v1::RunAck ack;
      while (stream->Read(&ack)) {
        if (ack.result() == v1::RunAck::RESULT_REJECTED) ++failed;
      }
      if (!stream->Finish().ok()) ++failed;
    }
  });
  int promoted = 0;
  for (int round = 0; round < 3; ++round) {
    if (round != 1) {
      auto info = models().RetrainNow();
      ASSERT_TRUE(info.ok()) << info.status();
      promoted += info->promoted() ? 1 : 0;
    } else {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 300);
      v1::RetrainResponse resp;
      grpc::Status st = conn_.admin->Retrain(&ctx, v1::RetrainRequest(), &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      promoted += resp.candidate().promoted() ? 1 : 0;
    }
  }
  stop = true;
  reporter.join();
  for (auto& t : callers) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 10);
  EXPECT_EQ(went_back.load(), 0) << "a caller saw an older serving version after a newer one";
  absl::MutexLock l(&versions_mu);
  EXPECT_TRUE(versions_seen.count(first_version) || *versions_seen.begin() > first_version);
  EXPECT_LE(*versions_seen.rbegin(), models().Serving()->info.version());
  if (promoted > 0) {
    EXPECT_GT(models().Serving()->info.version(), first_version);
  }
}

class ExplorationTest : public ModelLifecycleTest {
 protected:
  void SetUp() override {
    exploration_rate_ = 0.3;
    ModelLifecycleTest::SetUp();
  }
};

TEST_F(ExplorationTest, PlacesCandidatesFirstWithTheProbabilitiesItReturns) {
  TrainGood();
  // Batch 16 is the crossover: both strategies are plausible winners there.
  const v1::TaskContext tie = SyntheticContext(16, 320, 7);
  const std::string ranked_first = Select(tie).recommendations(0).strategy().id();
  const int calls = 400;
  std::map<std::string, int> first;
  std::map<std::string, double> returned;
  for (int i = 0; i < calls; ++i) {
    auto resp = Select(tie, /*explore=*/true);
    ASSERT_EQ(resp.recommendations_size(), 2);
    double total_probability = 0;
    for (const auto& r : resp.recommendations()) {
      total_probability += r.selection_probability();
      // Nothing is reported between calls, so each candidate's probability is the same on every call.
      auto [it, inserted] = returned.try_emplace(r.strategy().id(), r.selection_probability());
      EXPECT_NEAR(it->second, r.selection_probability(), 1e-12);
    }
    EXPECT_NEAR(total_probability, 1.0, 1e-9);
    EXPECT_EQ(resp.recommendations(0).explored(), resp.recommendations(0).strategy().id() != ranked_first);
    ++first[resp.recommendations(0).strategy().id()];
  }
  for (const std::string id : {"small", "large"}) {
    // The floor (0.3 here) is spread over the plausible winners: each has at least its share.
    EXPECT_GE(returned.at(id), 0.15 - 1e-9) << id;
    const double p = returned.at(id);
    const double sd = std::sqrt(calls * p * (1 - p));
    EXPECT_NEAR(first[id], calls * p, 4 * sd + 1) << id;
  }
  // At batch 2 "large" is 4.5x slower: not a plausible winner, never placed first, probability 0.
  for (int i = 0; i < 50; ++i) {
    auto resp = Select(SyntheticContext(2, 256, 7), /*explore=*/true);
    EXPECT_EQ(resp.recommendations(0).strategy().id(), "small");
    EXPECT_EQ(resp.recommendations(1).selection_probability(), 0.0);
  }
  // Without the caller's consent there is no exploration.
  for (int i = 0; i < 50; ++i) {
    auto resp = Select(tie);
    EXPECT_FALSE(resp.recommendations(0).explored());
    EXPECT_EQ(resp.recommendations(0).selection_probability(), 1.0);
  }
}

// A cold network must get its first models while it is small, not after a count meant for a mature store: the
// trainer retrains as the history grows by a share (here half), with no timer and no count trigger.
class GrowthTriggerTest : public ModelLifecycleTest {
 protected:
  void SetUp() override {
    adjust_options_ = [](server::ServerOptions& o) {
      o.retrain_interval = absl::ZeroDuration();
      o.retrain_min_new_runs = 0;
      o.retrain_growth = 0.5;
      o.retrain_growth_min_runs = 100;
    };
    ModelLifecycleTest::SetUp();
  }
  // Polls (100 ms, at most 120 s) until some trained version (promoted or not) read at least `rows` runs.
  bool WaitForVersionReading(size_t rows) {
    for (int i = 0; i < 1200; ++i) {
      v1::GetModelInfoResponse info;
      models().FillInfo(&info);
      for (const auto& v : info.history()) {
        if (v.training_rows() + v.evaluation().holdout_rows() >= rows) return true;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }
};

TEST_F(GrowthTriggerTest, RetrainsAsTheHistoryGrowsByAShare) {
  Register("small");
  Register("large");
  Stream(Telemetry("first", 0.1, 1, /*reps=*/1));  // 192 runs, stored before the trainer runs
  adjust_options_ = [previous = adjust_options_](server::ServerOptions& o) {
    previous(o);
    o.trainer_enabled = true;
  };
  Restart();  // no model serves: the trainer trains a first one on all 192
  ASSERT_TRUE(WaitForVersionReading(192));
  // 384 more: over half of the 192 the last retrain read, so the growth trigger alone must train on them.
  Stream(Telemetry("second", 0.1, 2, /*reps=*/2));
  EXPECT_TRUE(WaitForVersionReading(192 + 100));
}

// ---------------------------------------------------------------------------------------------------------------
// The decision log in the running service.
// ---------------------------------------------------------------------------------------------------------------

class LiveQualityTest : public ModelLifecycleTest {
 protected:
  void SetUp() override {
    adjust_options_ = [this](server::ServerOptions& o) {
      o.metrics_listen = "127.0.0.1:0";
      if (adjust_live_) adjust_live_(o);
    };
    ModelLifecycleTest::SetUp();
  }

  v1::SelectAcceleratorResponse SelectFor(const v1::TaskContext& ctx, const std::string& node) {
    return Select(ctx, /*explore=*/false, node);
  }

  // A report of running `strategy` for `decision`, measuring `e2e_ms`.
  static v1::RunReport Answer(const v1::TaskContext& ctx, const std::string& decision_id, const std::string& node,
                              const std::string& strategy, double e2e_ms) {
    static std::atomic<int> n{0};
    v1::RunReport r;
    r.set_run_id(absl::StrCat("answer-", n++));
    r.set_node_id(node);
    r.set_decision_id(decision_id);
    *r.mutable_context() = ctx;
    r.set_strategy_id(strategy);
    r.set_status(v1::RUN_STATUS_OK);
    r.mutable_metrics()->set_e2e_latency_ms(e2e_ms);
    return r;
  }

  v1::GetLiveQualityResponse Quality() {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::GetLiveQualityResponse resp;
    grpc::Status st = conn_.admin->GetLiveQuality(&ctx, v1::GetLiveQualityRequest(), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  // Polls (50 ms, at most 60 s) until the window holds `joined` joined reports.
  bool WaitForJoined(uint64_t joined) {
    for (int i = 0; i < 1200; ++i) {
      if (Quality().overall().joined_reports() >= joined) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  std::string Scrape() { return HttpGet(server_->metrics_port(), "/metrics"); }

  std::function<void(server::ServerOptions&)> adjust_live_;
};

TEST_F(LiveQualityTest, ReportsJoinTheirDecisionsAndShowInLiveQualityAndMetrics) {
  TrainGood();
  const uint64_t version = models().Serving()->info.version();
  std::vector<v1::RunReport> answers;
  int followed = 0;
  for (uint32_t batch : {1u, 2u, 4u, 8u, 32u, 64u, 128u}) {
    for (uint32_t prompt : {128u, 512u}) {
      const v1::TaskContext ctx = SyntheticContext(batch, prompt, 13);
      const v1::SelectAcceleratorResponse resp = SelectFor(ctx, "node-a");
      ASSERT_EQ(resp.recommendations_size(), 2);
      // Every third node runs the second place: "not followed" must be told apart.
      const int pick = answers.size() % 3 == 2 ? 1 : 0;
      followed += pick == 0;
      const std::string strategy = resp.recommendations(pick).strategy().id();
      answers.push_back(
          Answer(ctx, resp.decision_id(), "node-a", strategy, TrueLatencyMs(strategy, batch, prompt, 13)));
    }
  }
  // An id of another shape and one made for another node: stored, acknowledged, not joined.
  const v1::TaskContext ctx = SyntheticContext(4, 256, 13);
  const v1::SelectAcceleratorResponse for_b = SelectFor(ctx, "node-b");
  answers.push_back(Answer(ctx, for_b.decision_id(), "node-a", "small", 100));
  answers.push_back(Answer(ctx, "client-made:7", "node-a", "small", 100));
  Stream(answers);
  const uint64_t joined = answers.size() - 2;
  ASSERT_TRUE(WaitForJoined(joined));

  const v1::GetLiveQualityResponse q = Quality();
  EXPECT_TRUE(q.decision_log_enabled());
  EXPECT_EQ(q.overall().decisions(), joined + 1);
  EXPECT_EQ(q.overall().joined_reports(), joined);
  EXPECT_EQ(q.overall().scored_reports(), joined);
  EXPECT_NEAR(q.overall().follow_rate(), static_cast<double>(followed) / joined, 1e-12);
  // The model learned this network to about 10 %: live error of that order, not of a broken join.
  EXPECT_LT(q.overall().mape(), 0.5);
  EXPECT_GT(q.overall().coverage80(), 0.3);
  ASSERT_EQ(q.versions_size(), 1);
  EXPECT_EQ(q.versions(0).version(), version);
  EXPECT_GT(q.versions(0).holdout().holdout_rows(), 0u);
  ASSERT_EQ(q.nodes_size(), 1);
  EXPECT_EQ(q.nodes(0).node_id(), "node-a");

  const std::string metrics = Scrape();
  EXPECT_EQ(Sample(metrics, "accelsel_decision_joins_total{result=\"joined\"}"), static_cast<double>(joined));
  EXPECT_EQ(Sample(metrics, "accelsel_decision_joins_total{result=\"foreign\"}"), 1);
  EXPECT_EQ(Sample(metrics, "accelsel_decision_joins_total{result=\"unknown\"}"), 1);
  const std::string v = absl::StrCat("version=\"", version, "\"");
  EXPECT_EQ(Sample(metrics, absl::StrCat("accelsel_live_followed_total{followed=\"true\",", v, "}")), followed);
  EXPECT_EQ(Sample(metrics, absl::StrCat("accelsel_live_ape_count{", v, "}")), static_cast<double>(joined));
  EXPECT_GT(Sample(metrics, absl::StrCat("accelsel_live_holdout_mape{", v, "}")), 0);
  EXPECT_EQ(Sample(metrics, "accelsel_decision_log_dropped_total{kind=\"decision\"}"), 0);
}

TEST_F(LiveQualityTest, DriftWakesTheTrainerWhichTrainsANewVersion) {
  TrainGood();
  adjust_live_ = [](server::ServerOptions& o) {
    o.trainer_enabled = true;  // with every trigger but drift off
    o.retrain_interval = absl::ZeroDuration();
    o.retrain_min_new_runs = 0;
    o.retrain_growth = 0;
    o.decision_log.drift_window = 20;
    o.decision_log.drift_factor = 2;
  };
  Restart();
  const uint64_t serving = models().Serving()->info.version();
  // The network changed under the model: every run now takes 20 x what it predicts.
  std::vector<v1::RunReport> answers;
  for (int i = 0; i < 30; ++i) {
    const v1::TaskContext ctx = SyntheticContext(1u << (i % 8), 256, 70);
    const v1::SelectAcceleratorResponse resp = SelectFor(ctx, "node-a");
    const auto& first = resp.recommendations(0);
    answers.push_back(Answer(ctx, resp.decision_id(), "node-a", first.strategy().id(), 20 * first.expected_value()));
  }
  Stream(answers);
  bool retrained = false;
  for (int i = 0; i < 1200 && !retrained; ++i) {  // 100 ms, at most 120 s
    v1::GetModelInfoResponse info;
    models().FillInfo(&info);
    retrained = !info.history().empty() && info.history(0).version() > serving;
    if (!retrained) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(retrained) << "no version trained after the drift";
  const std::string metrics = Scrape();
  EXPECT_EQ(Sample(metrics, "accelsel_drift_wakeups_total"), 1);
  EXPECT_GT(Sample(metrics, "accelsel_live_drift_ratio"), 2);
}

TEST_F(LiveQualityTest, ASelectFloodWithTheQueueFullIsServedAndCountsItsDrops) {
  auto taken = std::make_shared<absl::Notification>();
  auto release = std::make_shared<absl::Notification>();
  adjust_live_ = [taken, release](server::ServerOptions& o) {
    o.decision_log.queue_capacity = 4;
    o.decision_log.on_take = [taken, release] {
      if (!taken->HasBeenNotified()) taken->Notify();
      release->WaitForNotification();
    };
  };
  Restart();
  struct Release {
    std::shared_ptr<absl::Notification> n;
    ~Release() {
      if (!n->HasBeenNotified()) n->Notify();
    }
  } guard{release};
  Register("small");
  Register("large");
  const v1::TaskContext ctx = SyntheticContext(8, 256, 7);
  SelectFor(ctx, "node-a");
  ASSERT_TRUE(taken->WaitForNotificationWithTimeout(absl::Seconds(30)));  // the writer holds it; the queue is empty
  constexpr int kThreads = 4, kEach = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) ok += SelectFor(ctx, "node-a").recommendations_size() == 2;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);  // every request answered while the log could take no more
  EXPECT_EQ(Sample(Scrape(), "accelsel_decision_log_dropped_total{kind=\"decision\"}"), kThreads * kEach - 4);
  release->Notify();
  server_->core().decisions().Flush();
  EXPECT_EQ(Quality().overall().decisions(), 5u);
}

TEST_F(LiveQualityTest, TheDecisionLogStaysWithinItsBoundUnderASelectFlood) {
  adjust_live_ = [](server::ServerOptions& o) { o.decision_log.max_bytes = 32 << 10; };
  Restart();
  Register("small");
  Register("large");
  for (int i = 0; i < 600; ++i) SelectFor(SyntheticContext(1u << (i % 8), 128u << (i % 4), 7), "node-a");
  server_->core().decisions().Flush();
  auto size = StoredDecisionLogSize(*server_->core().store());
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_LE(size->bytes, 32u << 10);
  EXPECT_GT(size->records, 0u);
  EXPECT_LT(size->records, 600u);
  const std::string metrics = Scrape();
  EXPECT_LE(Sample(metrics, "accelsel_decision_log_bytes"), 32 << 10);
  EXPECT_EQ(Sample(metrics, "accelsel_decision_log_pruned_total{reason=\"bytes\"}"), 600.0 - size->records);
}

}  // namespace
}  // namespace accelsel::testing
