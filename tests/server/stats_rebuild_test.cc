// RebuildObservedStats (server/stats_rebuild.h) against the plain rebuild it replaces: every stored run added one by
// one in time-index order (ScanRuns from 0). A real RocksDB store in three table files of disjoint id ranges, so
// that the read splits; runs whose id order is not their time order, ties in time, failures, negative times, mixed
// accelerator spellings, a node that lies (distrusted) and a strategy that slows down (a level change), so that
// every order-dependent part of the statistics is exercised.
#include "server/stats_rebuild.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/convert.h"

namespace accelsel::server {
namespace {

model::ObservedStatsOptions SmallWindows() {
  model::ObservedStatsOptions o;
  o.level_window = 40;  // level judgements and trust verdicts within a few thousand runs
  o.trust_window = 24;
  o.trust_min_residuals = 8;
  // Small reservoirs: they overflow, so the sampling draws (one generator for all cells) depend on the order of
  // every run, ties in time included.
  o.max_samples_per_cell = 24;
  o.min_samples_per_node = 2;
  return o;
}

class StatsRebuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("ACCELSEL_TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/stats_rebuild_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", getpid());
    std::filesystem::remove_all(dir_);
    storage::StoreOptions options;
    options.path = dir_;
    options.sync_writes = false;
    options.block_cache_mb = 8;
    options.write_buffer_mb = 4;
    auto store = storage::TelemetryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override {
    store_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // 6 contexts x 4 strategies x 6 honest nodes, a liar 3x slow, s2 twice as slow from the middle of the time range.
  void StoreNetwork() {
    std::mt19937_64 rng(9);
    std::vector<v1::RunReport> runs;
    auto add = [&](const std::string& node, int context, int strategy, int64_t time) {
      v1::RunReport& r = runs.emplace_back();
      r.set_run_id(absl::StrCat(rng() % 1000000, "-", runs.size()));  // id order unrelated to time order
      r.set_node_id(node);
      r.set_time_unix_ms(time);
      auto* c = r.mutable_context();
      c->mutable_model()->set_name(context % 2 == 0 ? "llama-3-8b" : "mistral-7b");
      c->mutable_hardware()->set_accelerator(context % 3 == 0 ? "H100" : (context % 3 == 1 ? "h100" : "MI300X"));
      c->mutable_hardware()->set_count(1);
      c->mutable_hardware()->set_price_per_hour(1.0 + context);
      c->mutable_workload()->set_batch_size(static_cast<uint32_t>(1 + context));
      c->mutable_workload()->set_prompt_tokens(512);
      c->mutable_workload()->set_output_tokens(128);
      r.set_strategy_id(absl::StrCat("s", strategy));
      double e2e = 100.0 * (1 + strategy) * (1 + context % 3) * std::exp(0.1 * static_cast<double>(rng() % 100) / 100);
      if (node == "liar") e2e *= 3;
      if (strategy == 2 && time >= 50'000) e2e *= 2;
      if (rng() % 17 == 0) {
        r.set_status(v1::RUN_STATUS_OOM);
      } else {
        r.mutable_metrics()->set_e2e_latency_ms(e2e);
        r.mutable_metrics()->set_ttft_ms(e2e / 10);
        r.mutable_metrics()->set_throughput_tokens_per_s(1e5 / e2e);
      }
    };
    for (int round = 0; round < 12; ++round) {
      for (int context = 0; context < 6; ++context) {
        for (int strategy = 0; strategy < 4; ++strategy) {
          for (int node = 0; node < 6; ++node) {
            // Times in coarse steps, so that many runs share a millisecond.
            add(absl::StrCat("node-", node), context, strategy, round * 8'500 + static_cast<int64_t>(rng() % 40) * 10);
          }
          add("liar", context, strategy, round * 8'500 + static_cast<int64_t>(rng() % 40) * 10);
        }
      }
    }
    for (int i = 0; i < 5; ++i) add("node-0", i, 0, -1 - i);  // left out, as ScanRuns(0) leaves them
    std::sort(runs.begin(), runs.end(),
              [](const v1::RunReport& a, const v1::RunReport& b) { return a.run_id() < b.run_id(); });
    for (size_t chunk = 0; chunk < 3; ++chunk) {
      std::vector<const v1::RunReport*> pointers;
      for (size_t i = runs.size() * chunk / 3; i < runs.size() * (chunk + 1) / 3; ++i) pointers.push_back(&runs[i]);
      ASSERT_TRUE(store_->AppendRuns(pointers).ok());
      ASSERT_TRUE(store_->Flush().ok());
    }
    for (const v1::RunReport& r : runs) {
      if (r.time_unix_ms() >= 0) contexts_.push_back(FromProto(r.context()));
    }
  }

  // Everything a reader can ask of the statistics, compared.
  void ExpectSame(const model::ObservedStats& want, const model::ObservedStats& got) {
    EXPECT_EQ(got.runs(), want.runs());
    EXPECT_EQ(got.contexts(), want.contexts());
    EXPECT_EQ(got.Levels(), want.Levels());
    EXPECT_EQ(got.DistrustedNodes(), want.DistrustedNodes());
    for (const std::string accelerator : {"h100", "H100", "mi300x", "a100"}) {
      EXPECT_EQ(got.AcceleratorKnown(accelerator), want.AcceleratorKnown(accelerator)) << accelerator;
      EXPECT_EQ(got.ObservedOnAccelerator(accelerator, "s1"), want.ObservedOnAccelerator(accelerator, "s1"));
    }
    for (const model::TaskContext& c : contexts_) {
      for (int s = 0; s < 4; ++s) {
        const std::string strategy = absl::StrCat("s", s);
        for (model::Objective objective : {model::Objective::kE2eLatency, model::Objective::kTtft,
                                           model::Objective::kThroughput, model::Objective::kCost}) {
          for (bool similar : {false, true}) {
            const auto w =
                similar ? want.Similar(c, strategy, objective, 0.8) : want.Exact(c, strategy, objective, 0.8);
            const auto g = similar ? got.Similar(c, strategy, objective, 0.8) : got.Exact(c, strategy, objective, 0.8);
            ASSERT_EQ(g.has_value(), w.has_value());
            if (!w.has_value()) continue;
            EXPECT_EQ(g->ok_runs, w->ok_runs);
            EXPECT_EQ(g->failed_runs, w->failed_runs);
            EXPECT_EQ(g->nodes, w->nodes);
            for (auto [a, b] : {std::pair{g->median, w->median}, std::pair{g->low, w->low}, std::pair{g->high, w->high},
                                std::pair{g->median_latency_ms, w->median_latency_ms}}) {
              EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << a << " vs " << b;
            }
          }
        }
      }
    }
  }

  std::string dir_;
  std::unique_ptr<storage::TelemetryStore> store_;
  std::vector<model::TaskContext> contexts_;
};

TEST_F(StatsRebuildTest, AddsEveryRunInTimeIndexOrderOnOneOrSeveralThreads) {
  StoreNetwork();
  model::ObservedStats want(SmallWindows());
  ASSERT_TRUE(store_
                  ->ScanRuns(0,
                             [&](const v1::RunReport& r) {
                               want.Add(FromProto(r));
                               return true;
                             })
                  .ok());
  // The network is built to exercise what depends on order: a level change and a distrusted node.
  ASSERT_FALSE(want.Levels().empty());
  ASSERT_EQ(want.DistrustedNodes().count(model::ObservedStats::NodeHash("liar")), 1u);
  for (size_t threads : {1u, 3u, 8u}) {
    SCOPED_TRACE(absl::StrCat(threads, " threads"));
    model::ObservedStats got(SmallWindows());
    absl::StatusOr<uint64_t> added = RebuildObservedStats(*store_, threads, &got);
    ASSERT_TRUE(added.ok()) << added.status();
    EXPECT_EQ(*added, want.runs());
    ExpectSame(want, got);
  }
}

TEST_F(StatsRebuildTest, AnEmptyStoreAddsNothing) {
  model::ObservedStats got;
  absl::StatusOr<uint64_t> added = RebuildObservedStats(*store_, 4, &got);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 0u);
  EXPECT_EQ(got.runs(), 0u);
}

}  // namespace
}  // namespace accelsel::server
