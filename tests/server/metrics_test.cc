// Unit tests of Metrics (server/metrics.h) through its registry, without HTTP (metrics_scrape_test scrapes a real
// endpoint): every family exists from the start with its type and bounded label set, and each recording method moves
// exactly the series it names.
#include "server/metrics.h"

#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "tests/test_util/registry.h"

namespace accelsel::server {
namespace {

using accelsel::testing::FindFamily;
using accelsel::testing::FindSeries;
using accelsel::testing::Labels;
using accelsel::testing::Value;

TEST(MetricsTest, EveryFamilyIsRegisteredWithItsTypeAndHelpFromTheStart) {
  Metrics metrics;
  const auto families = metrics.registry().Collect();
  const std::map<std::string, prometheus::MetricType> want = {
      {"accelsel_rpc_requests_total", prometheus::MetricType::Counter},
      {"accelsel_rpc_latency_seconds", prometheus::MetricType::Histogram},
      {"accelsel_selections_total", prometheus::MetricType::Counter},
      {"accelsel_selections_explored_total", prometheus::MetricType::Counter},
      {"accelsel_runs_ingested_total", prometheus::MetricType::Counter},
      {"accelsel_runs_duplicate_total", prometheus::MetricType::Counter},
      {"accelsel_unknown_fields_dropped_total", prometheus::MetricType::Counter},
      {"accelsel_runs_rejected_total", prometheus::MetricType::Counter},
      {"accelsel_suspect_node_reports_total", prometheus::MetricType::Counter},
      {"accelsel_runs_stored", prometheus::MetricType::Gauge},
      {"accelsel_storage_bytes", prometheus::MetricType::Gauge},
      {"accelsel_strategies", prometheus::MetricType::Gauge},
      {"accelsel_model_version", prometheus::MetricType::Gauge},
      {"accelsel_model_age_seconds", prometheus::MetricType::Gauge},
      {"accelsel_model_training_rows", prometheus::MetricType::Gauge},
      {"accelsel_model_training_seconds", prometheus::MetricType::Gauge},
      {"accelsel_model_holdout_mape", prometheus::MetricType::Gauge},
      {"accelsel_model_holdout_top1", prometheus::MetricType::Gauge},
      {"accelsel_model_holdout_coverage80", prometheus::MetricType::Gauge},
      {"accelsel_exploration_rate", prometheus::MetricType::Gauge},
      {"accelsel_model_promotions_total", prometheus::MetricType::Counter},
      {"accelsel_model_rejections_total", prometheus::MetricType::Counter},
      {"accelsel_model_retrain_failures_total", prometheus::MetricType::Counter},
      {"accelsel_runs_expired_total", prometheus::MetricType::Counter},
      {"accelsel_config_reloads_total", prometheus::MetricType::Counter},
      // The decision log's own; its per-version live-quality families are created by DecisionLog.
      {"accelsel_decisions_logged_total", prometheus::MetricType::Counter},
      {"accelsel_decision_log_bytes", prometheus::MetricType::Gauge},
      {"accelsel_decision_log_write_failures_total", prometheus::MetricType::Counter},
      {"accelsel_decision_log_dropped_total", prometheus::MetricType::Counter},
      {"accelsel_decision_log_pruned_total", prometheus::MetricType::Counter},
      {"accelsel_decision_joins_total", prometheus::MetricType::Counter},
      {"accelsel_build_info", prometheus::MetricType::Gauge},
      // go-grpc-prometheus' names, recorded by server/interceptors.h.
      {"grpc_server_started_total", prometheus::MetricType::Counter},
      {"grpc_server_handled_total", prometheus::MetricType::Counter},
      {"grpc_server_msg_received_total", prometheus::MetricType::Counter},
      {"grpc_server_msg_sent_total", prometheus::MetricType::Counter},
      {"grpc_server_handling_seconds", prometheus::MetricType::Histogram},
  };
  for (const auto& [name, type] : want) {
    SCOPED_TRACE(name);
    const prometheus::MetricFamily* f = FindFamily(families, name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->type, type);
    EXPECT_FALSE(f->help.empty());
    EXPECT_FALSE(f->metric.empty());  // at least one series exists before anything is recorded
  }
  EXPECT_EQ(families.size(), want.size()) << "a family was added: list it here and in docs/OPERATIONS.md";

  // Bounded label sets, all present at zero: every method x every status code; every rejection reason; layers.
  const prometheus::MetricFamily* requests = FindFamily(families, "accelsel_rpc_requests_total");
  EXPECT_EQ(requests->metric.size(), static_cast<size_t>(Method::kCount) * 17);
  for (int m = 0; m < static_cast<int>(Method::kCount); ++m) {
    const std::string method = MethodName(static_cast<Method>(m));
    EXPECT_NE(method, "unknown");
    EXPECT_NE(FindSeries(*requests, {{"method", method}, {"code", "OK"}}), nullptr) << method;
    EXPECT_NE(FindSeries(*requests, {{"method", method}, {"code", "UNAUTHENTICATED"}}), nullptr) << method;
  }
  const prometheus::MetricFamily* rejected = FindFamily(families, "accelsel_runs_rejected_total");
  EXPECT_EQ(rejected->metric.size(), std::size(Metrics::kRejectReasons));
  for (const char* reason : Metrics::kRejectReasons) {
    EXPECT_NE(FindSeries(*rejected, {{"reason", reason}}), nullptr) << reason;
  }
  const prometheus::MetricFamily* selections = FindFamily(families, "accelsel_selections_total");
  for (const char* layer : {"observed", "model", "prior", "unknown"}) {
    EXPECT_EQ(Value(metrics, "accelsel_selections_total", {{"layer", layer}}), 0.0) << layer;
  }
  EXPECT_EQ(selections->metric.size(), 4u);
  EXPECT_THAT(FindFamily(families, "accelsel_suspect_node_reports_total")->metric, ::testing::SizeIs(1));
}

TEST(MetricsTest, RecordRpcCountsByMethodAndCodeAndObservesTheLatency) {
  Metrics metrics;
  metrics.RecordRpc(Method::kSelectAccelerator, grpc::StatusCode::OK, absl::Milliseconds(3));
  metrics.RecordRpc(Method::kSelectAccelerator, grpc::StatusCode::OK, absl::Milliseconds(5));
  metrics.RecordRpc(Method::kSelectAccelerator, grpc::StatusCode::INVALID_ARGUMENT, absl::Microseconds(10));
  metrics.RecordRpc(Method::kQuarantineNode, grpc::StatusCode::PERMISSION_DENIED, absl::Seconds(10));
  const std::string kRequests = "accelsel_rpc_requests_total";
  EXPECT_EQ(Value(metrics, kRequests, {{"method", "SelectAccelerator"}, {"code", "OK"}}), 2.0);
  EXPECT_EQ(Value(metrics, kRequests, {{"method", "SelectAccelerator"}, {"code", "INVALID_ARGUMENT"}}), 1.0);
  EXPECT_EQ(Value(metrics, kRequests, {{"method", "QuarantineNode"}, {"code", "PERMISSION_DENIED"}}), 1.0);
  EXPECT_EQ(Value(metrics, kRequests, {{"method", "ReportRun"}, {"code", "OK"}}), 0.0);

  const auto families = metrics.registry().Collect();
  const prometheus::MetricFamily* latency = FindFamily(families, "accelsel_rpc_latency_seconds");
  ASSERT_NE(latency, nullptr);
  const prometheus::ClientMetric* select = FindSeries(*latency, {{"method", "SelectAccelerator"}});
  ASSERT_NE(select, nullptr);
  EXPECT_EQ(select->histogram.sample_count, 3u);
  EXPECT_NEAR(select->histogram.sample_sum, 0.00801, 1e-9);
  // Buckets: 50 us doubling up to about 3.3 s (then +Inf): the 10 us call is in the first bucket, 10 s only in +Inf.
  ASSERT_FALSE(select->histogram.bucket.empty());
  EXPECT_NEAR(select->histogram.bucket.front().upper_bound, 50e-6, 1e-12);
  EXPECT_EQ(select->histogram.bucket.front().cumulative_count, 1u);
  const prometheus::ClientMetric* quarantine = FindSeries(*latency, {{"method", "QuarantineNode"}});
  ASSERT_NE(quarantine, nullptr);
  const auto& buckets = quarantine->histogram.bucket;
  ASSERT_GE(buckets.size(), 2u);
  EXPECT_LT(buckets[buckets.size() - 2].upper_bound, 4.0);
  EXPECT_EQ(buckets[buckets.size() - 2].cumulative_count, 0u);
  EXPECT_EQ(buckets.back().cumulative_count, 1u);
}

TEST(MetricsTest, ReportRunStreamsAreCountedButNotInTheLatencyHistogram) {
  Metrics metrics;
  metrics.RecordRpc(Method::kReportRun, grpc::StatusCode::OK, absl::Hours(3));
  EXPECT_EQ(Value(metrics, "accelsel_rpc_requests_total", {{"method", "ReportRun"}, {"code", "OK"}}), 1.0);
  EXPECT_EQ(Value(metrics, "accelsel_rpc_latency_seconds", {{"method", "ReportRun"}}), std::nullopt);
  EXPECT_EQ(Value(metrics, "accelsel_rpc_latency_seconds", {{"method", "SelectAccelerator"}}), 0.0);
}

TEST(MetricsTest, GrpcSeriesOfAddedServicesExistFromTheStartAndUnknownMethodsShareOneSet) {
  Metrics metrics;
  const auto* service = v1::RunReport::descriptor()->file()->FindServiceByName("AcceleratorSelector");
  ASSERT_NE(service, nullptr);
  metrics.AddGrpcService(*service);
  const Labels select = {{"grpc_type", "unary"},
                         {"grpc_service", "accelsel.v1.AcceleratorSelector"},
                         {"grpc_method", "SelectAccelerator"}};
  const Labels report = {
      {"grpc_type", "bidi_stream"}, {"grpc_service", "accelsel.v1.AcceleratorSelector"}, {"grpc_method", "ReportRun"}};
  const Labels unknown = {{"grpc_type", "unknown"}, {"grpc_service", "unknown"}, {"grpc_method", "unknown"}};
  auto with_code = [](Labels labels, const char* code) {
    labels["grpc_code"] = code;
    return labels;
  };
  // At zero before any call, so that rate() and increase() see the first one.
  for (const Labels& labels : {select, report}) {
    EXPECT_EQ(Value(metrics, "grpc_server_started_total", labels), 0.0);
    EXPECT_EQ(Value(metrics, "grpc_server_handled_total", with_code(labels, "OK")), 0.0);
    EXPECT_EQ(Value(metrics, "grpc_server_handling_seconds", labels), 0.0);
    EXPECT_EQ(Value(metrics, "grpc_server_msg_received_total", labels), 0.0);
    EXPECT_EQ(Value(metrics, "grpc_server_msg_sent_total", labels), 0.0);
  }
  EXPECT_EQ(Value(metrics, "grpc_server_handled_total", with_code(unknown, "UNIMPLEMENTED")), 0.0);
  EXPECT_EQ(Value(metrics, "grpc_server_handled_total", with_code(select, "INVALID_ARGUMENT")), std::nullopt);

  GrpcMethodSeries* m = metrics.GrpcMethod("/accelsel.v1.AcceleratorSelector/SelectAccelerator");
  EXPECT_EQ(m->labels, select);
  metrics.GrpcHandled(m, grpc::StatusCode::OK, 0.001);
  metrics.GrpcHandled(m, grpc::StatusCode::INVALID_ARGUMENT, 0.002);
  metrics.GrpcHandled(m, static_cast<grpc::StatusCode>(99), 0.002);  // not a gRPC code: counted as UNKNOWN
  EXPECT_EQ(Value(metrics, "grpc_server_handled_total", with_code(select, "OK")), 1.0);
  EXPECT_EQ(Value(metrics, "grpc_server_handled_total", with_code(select, "INVALID_ARGUMENT")), 1.0);
  EXPECT_EQ(Value(metrics, "grpc_server_handled_total", with_code(select, "UNKNOWN")), 1.0);
  EXPECT_EQ(Value(metrics, "grpc_server_handling_seconds", select), 3.0);

  // Any path a client makes up lands in the one "unknown" set: no label value comes from a peer.
  for (const char* path : {"/accelsel.v1.AcceleratorSelector/Nope", "/x.Y/Z", "", "garbage"}) {
    EXPECT_EQ(metrics.GrpcMethod(path), metrics.GrpcMethod("/no.Such/Method")) << path;
  }
  EXPECT_EQ(metrics.GrpcMethod("/x.Y/Z")->labels, unknown);
}

TEST(MetricsTest, SelectionsCountByTopLayerAndExplorationSeparately) {
  Metrics metrics;
  metrics.RecordSelection(model::EvidenceLayer::kObserved, false);
  metrics.RecordSelection(model::EvidenceLayer::kObserved, true);
  metrics.RecordSelection(model::EvidenceLayer::kModel, false);
  metrics.RecordSelection(model::EvidenceLayer::kUnknown, true);
  EXPECT_EQ(Value(metrics, "accelsel_selections_total", {{"layer", "observed"}}), 2.0);
  EXPECT_EQ(Value(metrics, "accelsel_selections_total", {{"layer", "model"}}), 1.0);
  EXPECT_EQ(Value(metrics, "accelsel_selections_total", {{"layer", "prior"}}), 0.0);
  EXPECT_EQ(Value(metrics, "accelsel_selections_total", {{"layer", "unknown"}}), 1.0);
  EXPECT_EQ(Value(metrics, "accelsel_selections_explored_total"), 2.0);
}

TEST(MetricsTest, RejectionsCountByReasonAndUnknownReasonsFallIntoOther) {
  Metrics metrics;
  metrics.RunRejected("context");
  metrics.RunRejected("context");
  metrics.RunRejected("storage");
  metrics.RunRejected("context.model.name");  // not a top-level field: bounded label set
  metrics.RunRejected("");
  EXPECT_EQ(Value(metrics, "accelsel_runs_rejected_total", {{"reason", "context"}}), 2.0);
  EXPECT_EQ(Value(metrics, "accelsel_runs_rejected_total", {{"reason", "storage"}}), 1.0);
  EXPECT_EQ(Value(metrics, "accelsel_runs_rejected_total", {{"reason", "other"}}), 2.0);
  EXPECT_EQ(Value(metrics, "accelsel_runs_rejected_total", {{"reason", "context.model.name"}}), std::nullopt);
  const auto families = metrics.registry().Collect();
  EXPECT_EQ(FindFamily(families, "accelsel_runs_rejected_total")->metric.size(), std::size(Metrics::kRejectReasons));
}

TEST(MetricsTest, SuspectNodesGetTheirOwnSeriesUpToTheCapThenCountAsOther) {
  Metrics metrics;
  for (size_t i = 0; i < Metrics::kMaxSuspectNodes; ++i) metrics.SuspectReport(absl::StrCat("node-", i));
  metrics.SuspectReport("node-0");        // a known node keeps counting in its own series
  metrics.SuspectReport("one-too-many");  // past the cap
  metrics.SuspectReport("another");
  metrics.SuspectReport("other");  // a node called "other" cannot take the bucket's name
  EXPECT_EQ(Value(metrics, "accelsel_suspect_node_reports_total", {{"node", "node-0"}}), 2.0);
  EXPECT_EQ(Value(metrics, "accelsel_suspect_node_reports_total", {{"node", "node-19"}}), 1.0);
  EXPECT_EQ(Value(metrics, "accelsel_suspect_node_reports_total", {{"node", "one-too-many"}}), std::nullopt);
  EXPECT_EQ(Value(metrics, "accelsel_suspect_node_reports_total", {{"node", "other"}}), 3.0);
  const auto families = metrics.registry().Collect();
  EXPECT_EQ(FindFamily(families, "accelsel_suspect_node_reports_total")->metric.size(), Metrics::kMaxSuspectNodes + 1);
}

TEST(MetricsTest, CountersAndGaugesAreReachedThroughTheirAccessors) {
  Metrics metrics;
  metrics.RunsIngested(7);
  metrics.RunsDuplicate(2);
  metrics.UnknownFieldsDropped();
  metrics.runs_stored().Set(604);
  metrics.model_version().Set(3);
  metrics.exploration_rate().Set(0.05);
  metrics.model_promotions().Increment();
  metrics.retrain_failures().Increment(2);
  EXPECT_EQ(Value(metrics, "accelsel_runs_ingested_total"), 7.0);
  EXPECT_EQ(Value(metrics, "accelsel_runs_duplicate_total"), 2.0);
  EXPECT_EQ(Value(metrics, "accelsel_unknown_fields_dropped_total"), 1.0);
  EXPECT_EQ(Value(metrics, "accelsel_runs_stored"), 604.0);
  EXPECT_EQ(Value(metrics, "accelsel_model_version"), 3.0);
  EXPECT_EQ(Value(metrics, "accelsel_exploration_rate"), 0.05);
  EXPECT_EQ(Value(metrics, "accelsel_model_promotions_total"), 1.0);
  EXPECT_EQ(Value(metrics, "accelsel_model_rejections_total"), 0.0);
  EXPECT_EQ(Value(metrics, "accelsel_model_retrain_failures_total"), 2.0);
}

}  // namespace
}  // namespace accelsel::server
