// MetaModel end to end on synthetic telemetry: the answer switches at the right batch size, intervals cover at
// about their nominal rate, failures are learned, blobs round-trip and corrupt blobs are refused.
#include "model/meta_model.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "gtest/gtest.h"
#include "util/blob.h"
#include "util/job_pool.h"

namespace accelsel::model {
namespace {

TaskContext Context(uint32_t batch, uint32_t prompt) {
  TaskContext c;
  c.model = {"acme/model-7b", "acme", 7.0, 32, 4096, 32, 8, 0, 0, "bf16"};
  c.hardware = {"Acme X1", 1, 80, 2000, 400, "pcie", 2.0};
  c.workload = {prompt, 128, batch, 0, 0, "synthetic"};
  return c;
}

// A: 10 + batch ms, B: 40 + 0.25·batch ms (equal at 40), both scaled by prompt/256; C: slow, OOM from batch 64.
std::vector<RunRecord> Telemetry(int n, double sigma, uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Continuous shapes, so that holdout contexts are new ones (as in production), not repeats.
  std::uniform_real_distribution<double> log_batch(0, std::log(128.0));
  std::uniform_int_distribution<uint32_t> prompt_pick(64, 1024);
  std::normal_distribution<double> noise(0, sigma);
  std::vector<RunRecord> runs;
  for (int i = 0; i < n; ++i) {
    const uint32_t batch = static_cast<uint32_t>(std::lround(std::exp(log_batch(rng))));
    const uint32_t prompt = prompt_pick(rng);
    const double scale = prompt / 256.0;
    for (int s = 0; s < 3; ++s) {
      RunRecord r;
      r.run_id = "r" + std::to_string(i) + "-" + std::to_string(s);
      r.context = Context(batch, prompt);
      r.strategy_id = s == 0 ? "engine=a" : s == 1 ? "engine=b" : "engine=c";
      const double base = s == 0 ? 10 + batch : s == 1 ? 40 + 0.25 * batch : 200 + batch;
      if (s == 2 && batch >= 64) {
        r.status = RunStatus::kOom;
      } else {
        r.metrics.e2e_latency_ms = base * scale * std::exp(noise(rng));
        r.metrics.throughput_tokens_per_s = batch * 128 / (r.metrics.e2e_latency_ms / 1000);
      }
      runs.push_back(std::move(r));
    }
  }
  return runs;
}

const Strategy kA{"engine=a", {{"engine", "a"}}, ""};
const Strategy kB{"engine=b", {{"engine", "b"}}, ""};
const Strategy kC{"engine=c", {{"engine", "c"}}, ""};

std::unique_ptr<MetaModel> TrainedModel() {
  TrainOptions o;
  o.version = 3;
  auto m = MetaModel::Train(Telemetry(300, 0.15, 1), o);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

TEST(MetaModelTest, AnswerSwitchesAtTheRightBatchSize) {
  auto m = TrainedModel();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->version(), 3u);
  std::vector<Prediction> p;
  for (uint32_t batch : {1u, 4u, 16u}) {
    m->Predict(Context(batch, 256), {&kA, &kB}, Objective::kE2eLatency, &p);
    EXPECT_LT(p[0].expected, p[1].expected) << "batch " << batch;
  }
  for (uint32_t batch : {64u, 128u}) {
    m->Predict(Context(batch, 256), {&kA, &kB}, Objective::kE2eLatency, &p);
    EXPECT_GT(p[0].expected, p[1].expected) << "batch " << batch;
  }
  // Throughput is maximised: at batch 128 B has the higher predicted throughput.
  m->Predict(Context(128, 256), {&kA, &kB}, Objective::kThroughput, &p);
  EXPECT_LT(p[0].expected, p[1].expected);
  EXPECT_LE(p[1].low, p[1].expected);
  EXPECT_GE(p[1].high, p[1].expected);
  // Cost = latency × price per hour / 3.6e6.
  m->Predict(Context(8, 256), {&kA}, Objective::kCost, &p);
  EXPECT_NEAR(p[0].expected, p[0].latency_ms * 2.0 / 3.6e6, 1e-12);
}

TEST(MetaModelTest, HoldoutCoverageNearNominalAndTop1High) {
  auto m = TrainedModel();
  ASSERT_NE(m, nullptr);
  const HoldoutMetrics h = m->Evaluate(Telemetry(150, 0.15, 99));
  EXPECT_GT(h.rows, 200u);
  EXPECT_GT(h.coverage80, 0.72) << h.coverage80;
  EXPECT_LT(h.coverage80, 0.90) << h.coverage80;
  EXPECT_LT(h.mape, 0.2);
  EXPECT_GT(h.top1, 0.8);
}

TEST(MetaModelTest, FailuresAreLearned) {
  auto m = TrainedModel();
  ASSERT_NE(m, nullptr);
  std::vector<Prediction> p;
  m->Predict(Context(128, 256), {&kA, &kC}, Objective::kE2eLatency, &p);
  EXPECT_GT(p[1].failure_probability, 0.5);
  EXPECT_LT(p[0].failure_probability, 0.2);
  m->Predict(Context(2, 256), {&kC}, Objective::kE2eLatency, &p);
  EXPECT_LT(p[0].failure_probability, 0.5);
}

TEST(MetaModelTest, UnseenModelAndAcceleratorStillGetPredictions) {
  auto m = TrainedModel();
  ASSERT_NE(m, nullptr);
  TaskContext c = Context(8, 256);
  c.model.name = "other/never-seen-70b";
  c.model.parameters_b = 70;
  c.hardware.accelerator = "Brand New NPU";
  const Strategy unseen{"engine=z,tp=4", {}, ""};
  std::vector<Prediction> p;
  m->Predict(c, {&kA, &kB, &unseen}, Objective::kE2eLatency, &p);
  for (const Prediction& x : p) {
    EXPECT_TRUE(std::isfinite(x.expected));
    EXPECT_GT(x.expected, 0);
  }
}

TEST(MetaModelTest, UnseenModelOrAcceleratorGetsWiderIntervals) {
  // Three models and three accelerators, each with its own speed factor, so that a held-out one is harder.
  std::vector<RunRecord> runs;
  const char* models[] = {"m-a", "m-b", "m-c"};
  const char* accels[] = {"x-1", "x-2", "x-3"};
  int k = 0;
  for (int m = 0; m < 3; ++m) {
    for (int a = 0; a < 3; ++a) {
      for (RunRecord r : Telemetry(40, 0.1, 10 + k++)) {
        r.context.model.name = models[m];
        r.context.hardware.accelerator = accels[a];
        if (!IsMissing(r.metrics.e2e_latency_ms)) r.metrics.e2e_latency_ms *= (1 + m) * (1 + 0.5 * a);
        runs.push_back(std::move(r));
      }
    }
  }
  auto m = MetaModel::Train(runs, TrainOptions{});
  ASSERT_TRUE(m.ok()) << m.status();
  TaskContext known = Context(8, 256), unseen = Context(8, 256);
  known.model.name = "m-b";
  known.hardware.accelerator = "x-2";
  unseen.model.name = "m-new";
  unseen.hardware.accelerator = "x-new";
  std::vector<Prediction> pk, pu;
  (*m)->Predict(known, {&kA}, Objective::kE2eLatency, &pk);
  (*m)->Predict(unseen, {&kA}, Objective::kE2eLatency, &pu);
  const double width_known = std::log(pk[0].high / pk[0].low);
  const double width_unseen = std::log(pu[0].high / pu[0].low);
  EXPECT_GT(width_unseen, 1.5 * width_known) << width_known << " vs " << width_unseen;
  // The relative spread widens alike, and stays below the interval's.
  EXPECT_GT(pu[0].relative_log_sd, pk[0].relative_log_sd);
  EXPECT_LT(pu[0].relative_log_sd, width_unseen);
  // And it survives persistence.
  auto blob = (*m)->Serialize();
  ASSERT_TRUE(blob.ok());
  auto copy = MetaModel::Deserialize(*blob, 1);
  ASSERT_TRUE(copy.ok()) << copy.status();
  std::vector<Prediction> pc;
  (*copy)->Predict(unseen, {&kA}, Objective::kE2eLatency, &pc);
  EXPECT_DOUBLE_EQ(pc[0].low, pu[0].low);
}

// Four accelerators whose descriptors span 8x in bandwidth and compute while the measured latency ignores them
// (`follow_roofline` false: each device's software makes them all equally fast), or follows the roofline exactly
// (true). Held out in training, the first makes the baseline mislead, the second makes it exact.
std::vector<RunRecord> DevicesTelemetry(bool follow_roofline) {
  std::vector<RunRecord> runs;
  const double scale[] = {1, 2, 4, 8};
  for (int a = 0; a < 4; ++a) {
    for (RunRecord r : Telemetry(60, 0.05, 40 + a)) {
      r.context.hardware.accelerator = "dev-" + std::to_string(a);
      r.context.hardware.memory_bandwidth_gbps = 500 * scale[a];
      r.context.hardware.peak_tflops = 100 * scale[a];
      if (!IsMissing(r.metrics.e2e_latency_ms) && follow_roofline) r.metrics.e2e_latency_ms /= scale[a];
      runs.push_back(std::move(r));
    }
  }
  return runs;
}

TaskContext NewDevice(double scale) {
  TaskContext c = Context(16, 512);
  c.hardware.accelerator = "dev-new";
  c.hardware.memory_bandwidth_gbps = 500 * scale;
  c.hardware.peak_tflops = 100 * scale;
  return c;
}

TEST(MetaModelTest, UnseenAcceleratorGetsTheHeadWithoutBaselineWhereHeldOutDevicesShowItErrsLess) {
  TrainOptions with, without;
  without.raw_heads_for_novel = false;
  const std::vector<RunRecord> runs = DevicesTelemetry(/*follow_roofline=*/false);
  auto m = MetaModel::Train(runs, with);
  auto base = MetaModel::Train(runs, without);
  ASSERT_TRUE(m.ok() && base.ok());
  // A device 32x faster on paper than the slowest known one: in this network, as fast as every other device.
  const TaskContext fast = NewDevice(32);
  const double truth = 10 + 16 + 0.0;  // engine=a at batch 16, prompt 512: (10 + batch) · 512/256
  std::vector<Prediction> p, pb;
  (*m)->Predict(fast, {&kA}, Objective::kE2eLatency, &p);
  (*base)->Predict(fast, {&kA}, Objective::kE2eLatency, &pb);
  const double err = std::abs(std::log(p[0].expected / (2 * truth)));
  const double err_base = std::abs(std::log(pb[0].expected / (2 * truth)));
  EXPECT_LT(err, 0.5 * err_base) << p[0].expected << " vs " << pb[0].expected << ", truth " << 2 * truth;
  EXPECT_LE(p[0].low, 2 * truth);
  EXPECT_GE(p[0].high, 2 * truth);
  // A known device is served by the baseline head in both.
  TaskContext known = NewDevice(2);
  known.hardware.accelerator = "dev-1";
  (*m)->Predict(known, {&kA, &kB}, Objective::kE2eLatency, &p);
  (*base)->Predict(known, {&kA, &kB}, Objective::kE2eLatency, &pb);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_DOUBLE_EQ(p[i].expected, pb[i].expected);
  // It survives persistence.
  auto blob = (*m)->Serialize();
  ASSERT_TRUE(blob.ok()) << blob.status();
  auto copy = MetaModel::Deserialize(*blob, 1);
  ASSERT_TRUE(copy.ok()) << copy.status();
  std::vector<Prediction> pc, pm;
  (*copy)->Predict(fast, {&kA, &kB}, Objective::kE2eLatency, &pc);
  (*m)->Predict(fast, {&kA, &kB}, Objective::kE2eLatency, &pm);
  for (size_t i = 0; i < pc.size(); ++i) {
    EXPECT_DOUBLE_EQ(pc[i].expected, pm[i].expected);
    EXPECT_DOUBLE_EQ(pc[i].low, pm[i].low);
    EXPECT_DOUBLE_EQ(pc[i].high, pm[i].high);
  }
}

TEST(MetaModelTest, WhereTheRooflineHoldsUnseenAcceleratorsKeepTheBaselineHead) {
  TrainOptions with, without;
  without.raw_heads_for_novel = false;
  const std::vector<RunRecord> runs = DevicesTelemetry(/*follow_roofline=*/true);
  auto m = MetaModel::Train(runs, with);
  auto base = MetaModel::Train(runs, without);
  ASSERT_TRUE(m.ok() && base.ok());
  std::vector<Prediction> p, pb;
  (*m)->Predict(NewDevice(32), {&kA, &kB}, Objective::kE2eLatency, &p);
  (*base)->Predict(NewDevice(32), {&kA, &kB}, Objective::kE2eLatency, &pb);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_DOUBLE_EQ(p[i].expected, pb[i].expected);
}

TEST(MetaModelTest, AFormat4BlobIsReadWithoutHeadsForUnseenContexts) {
  TrainOptions o;
  o.raw_heads_for_novel = false;  // the format-5 section is then one empty flag per head
  auto m = MetaModel::Train(DevicesTelemetry(false), o);
  ASSERT_TRUE(m.ok()) << m.status();
  auto blob = (*m)->Serialize();
  ASSERT_TRUE(blob.ok());
  uint32_t format = 0;
  auto payload = util::OpenBlob(*blob, MetaModel::kBlobMagic, MetaModel::kBlobFormat, &format);
  ASSERT_TRUE(payload.ok()) << payload.status();
  ASSERT_EQ(format, 5u);
  const std::string old(payload->substr(0, payload->size() - 4 * MetaModel::kNumHeads));
  auto copy = MetaModel::Deserialize(util::SealBlob(MetaModel::kBlobMagic, 4, old), 1);
  ASSERT_TRUE(copy.ok()) << copy.status();
  std::vector<Prediction> p, pc;
  (*m)->Predict(NewDevice(32), {&kA, &kB}, Objective::kE2eLatency, &p);
  (*copy)->Predict(NewDevice(32), {&kA, &kB}, Objective::kE2eLatency, &pc);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_DOUBLE_EQ(p[i].expected, pc[i].expected);
}

TEST(MetaModelTest, BlobRoundTripsAndCorruptionIsRefused) {
  auto m = TrainedModel();
  ASSERT_NE(m, nullptr);
  auto blob = m->Serialize();
  ASSERT_TRUE(blob.ok()) << blob.status();
  auto copy = MetaModel::Deserialize(*blob, 7);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ((*copy)->version(), 7u);
  EXPECT_EQ((*copy)->training_rows(), m->training_rows());
  std::vector<Prediction> p1, p2;
  m->Predict(Context(32, 512), {&kA, &kB, &kC}, Objective::kE2eLatency, &p1);
  (*copy)->Predict(Context(32, 512), {&kA, &kB, &kC}, Objective::kE2eLatency, &p2);
  for (size_t i = 0; i < p1.size(); ++i) {
    EXPECT_DOUBLE_EQ(p1[i].expected, p2[i].expected);
    EXPECT_DOUBLE_EQ(p1[i].low, p2[i].low);
    EXPECT_DOUBLE_EQ(p1[i].failure_probability, p2[i].failure_probability);
    EXPECT_GT(p1[i].relative_log_sd, 0);
    EXPECT_DOUBLE_EQ(p1[i].relative_log_sd, p2[i].relative_log_sd);
  }
  std::string flipped = *blob;
  flipped[flipped.size() / 2] ^= 0x20;
  EXPECT_FALSE(MetaModel::Deserialize(flipped, 1).ok());
  EXPECT_FALSE(MetaModel::Deserialize(blob->substr(0, blob->size() - 1), 1).ok());
  std::string bad_magic = *blob;
  bad_magic[0] = 'X';
  EXPECT_FALSE(MetaModel::Deserialize(bad_magic, 1).ok());
  EXPECT_FALSE(MetaModel::Deserialize("", 1).ok());
  EXPECT_FALSE(MetaModel::Deserialize(std::string(100, '\0'), 1).ok());
}

TEST(MetaModelTest, TrainingOnSeveralThreadsGivesTheSameModel) {
  // Every booster has its own seed and rows, so training them at once changes nothing but the wall time: the blobs
  // (every head, interval, novelty quantile, ranking head and the failure classifier) are byte for byte equal.
  const std::vector<RunRecord> runs = Telemetry(200, 0.15, 5);
  std::string blobs[3];
  for (int threads : {1, 2, 3}) {
    TrainOptions o;
    o.threads = threads;
    auto m = MetaModel::Train(runs, o);
    ASSERT_TRUE(m.ok()) << m.status();
    auto blob = (*m)->Serialize();
    ASSERT_TRUE(blob.ok()) << blob.status();
    blobs[threads - 1] = *blob;
  }
  EXPECT_GT(blobs[0].size(), 1000u);
  EXPECT_EQ(blobs[0], blobs[1]);
  EXPECT_EQ(blobs[0], blobs[2]);
}

TEST(RunJobsTest, RunsEveryJobOnceAndReportsTheFirstFailureInOrder) {
  for (int threads : {1, 2, 4}) {
    std::vector<std::atomic<int>> ran(7);
    std::vector<std::function<absl::Status()>> jobs;
    for (int i = 0; i < 7; ++i) {
      jobs.push_back([&ran, i]() -> absl::Status {
        ran[i]++;
        if (i == 5) return absl::InternalError("five");
        if (i == 3) return absl::InvalidArgumentError("three");
        return absl::OkStatus();
      });
    }
    const absl::Status s = util::RunJobs(jobs, threads);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << threads;
    EXPECT_EQ(s.message(), "three");
    for (int i = 0; i < 7; ++i) EXPECT_EQ(ran[i].load(), 1) << "job " << i << ", " << threads << " threads";
  }
  std::vector<std::function<absl::Status()>> none;
  EXPECT_TRUE(util::RunJobs(none, 2).ok());
}

TEST(MetaModelTest, TooFewRunsIsAnError) {
  auto runs = Telemetry(1, 0.1, 5);
  EXPECT_FALSE(MetaModel::Train(runs, TrainOptions{}).ok());
  EXPECT_FALSE(MetaModel::Train({}, TrainOptions{}).ok());
}

TEST(MetaModelTest, PredictingThirtyTwoCandidatesGivesUsableAnswers) {
  auto m = TrainedModel();
  ASSERT_NE(m, nullptr);
  std::vector<Strategy> strategies;
  for (int i = 0; i < 32; ++i) strategies.push_back(Strategy{"engine=s" + std::to_string(i), {}, ""});
  std::vector<const Strategy*> ptrs;
  for (const auto& s : strategies) ptrs.push_back(&s);
  std::vector<Prediction> p;
  const TaskContext c = Context(16, 256);
  m->Predict(c, ptrs, Objective::kE2eLatency, &p);  // warm-up
  constexpr int kCalls = 200;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) m->Predict(c, ptrs, Objective::kE2eLatency, &p);
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / kCalls;
  RecordProperty("predict_32_us", std::to_string(us));
  // Informational only: speed is checked by bench/ (docs/BENCHMARKS.md), never by a timed unit test. What is
  // asserted is that every one of the 32 answers is a usable prediction.
  std::printf("Predict(32 candidates): %.1f us\n", us);
  ASSERT_EQ(p.size(), 32u);
  for (const Prediction& q : p) {
    EXPECT_TRUE(std::isfinite(q.expected) && q.expected > 0);
    EXPECT_LE(q.low, q.expected);
    EXPECT_GE(q.high, q.expected);
  }
}

}  // namespace
}  // namespace accelsel::model

namespace accelsel::model {
namespace {

HoldoutMetrics Scored(const std::vector<double>& errors, const std::vector<uint64_t>& contexts) {
  HoldoutMetrics m;
  m.row_abs_log_error = errors;
  m.row_context = contexts;
  return m;
}

// The promotion gate's comparison: run by run, over the runs both models scored, with a standard error that treats
// the runs of one context as one piece of evidence.
TEST(PairedLogErrorDifferenceTest, PairsRunsSkipsUnscoredOnesAndClustersByContext) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Four contexts of two runs; the candidate is 0.1 better everywhere except one unscored run.
  std::vector<uint64_t> ctx = {1, 1, 2, 2, 3, 3, 4, 4};
  HoldoutMetrics cand = Scored({0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, nan}, ctx);
  HoldoutMetrics cur = Scored({0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2}, ctx);
  PairedDifference d = PairedLogErrorDifference(cand, cur);
  EXPECT_EQ(d.rows, 7u);
  EXPECT_NEAR(d.mean, -0.1, 1e-12);
  EXPECT_NEAR(d.se, 0.0, 1e-12);
  // Differences that agree within a context and disagree between contexts: the clustered error is that of four
  // values, larger than eight independent runs would claim.
  cand = Scored({0.3, 0.3, 0.1, 0.1, 0.3, 0.3, 0.1, 0.1}, ctx);
  cur = Scored({0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2}, ctx);
  d = PairedLogErrorDifference(cand, cur);
  EXPECT_NEAR(d.mean, 0.0, 1e-12);
  const double naive = 0.1 / std::sqrt(8.0);  // sd 0.1 over 8 independent runs
  EXPECT_GT(d.se, 1.5 * naive);
  // Scored on different holdouts: no comparison.
  EXPECT_EQ(PairedLogErrorDifference(Scored({0.1}, {1}), cur).rows, 0u);
}

}  // namespace
}  // namespace accelsel::model
