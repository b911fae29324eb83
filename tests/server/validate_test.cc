// Unit tests of the validation rules: each rule refuses what it should, with the field named, and accepts the
// boundary values.
#include "server/validate.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "server/grpc_status.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

using ::testing::HasSubstr;

// Sets an unknown field on `m` and on every message it can hold (filling each message field once), recursively.
void PlantUnknownFieldsEverywhere(google::protobuf::Message* m, int depth = 0) {
  m->GetReflection()->MutableUnknownFields(m)->AddVarint(999, 1);
  if (depth > 8) return;
  const google::protobuf::Descriptor* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE || f->is_map()) continue;
    google::protobuf::Message* child =
        f->is_repeated() ? m->GetReflection()->AddMessage(m, f) : m->GetReflection()->MutableMessage(m, f);
    PlantUnknownFieldsEverywhere(child, depth + 1);
  }
}

int CountUnknownFieldSets(const google::protobuf::Message& m) {
  int n = m.GetReflection()->GetUnknownFields(m).empty() ? 0 : 1;
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < m.GetReflection()->FieldSize(m, f); ++i) {
        n += CountUnknownFieldSets(m.GetReflection()->GetRepeatedMessage(m, f, i));
      }
    } else {
      n += CountUnknownFieldSets(m.GetReflection()->GetMessage(m, f));
    }
  }
  return n;
}

// StripUnknownFields walks RunReport's message types by hand; this fails when a message field is added to the proto
// and the walk does not reach it.
TEST(ValidateTest, StripUnknownFieldsReachesEveryMessageOfAReport) {
  v1::RunReport r = MakeReport("r", "s", 1, 10);
  PlantUnknownFieldsEverywhere(&r);
  ASSERT_GT(CountUnknownFieldSets(r), 5);
  EXPECT_TRUE(server::StripUnknownFields(&r));
  EXPECT_EQ(CountUnknownFieldSets(r), 0);
  EXPECT_FALSE(server::StripUnknownFields(&r));
  v1::RunReport clean = MakeReport("r", "s", 1, 10);
  EXPECT_FALSE(server::StripUnknownFields(&clean));
}

TEST(ValidateTest, FloatRangeBoundsEveryMeasurement) {
  const double max = std::numeric_limits<float>::max();
  EXPECT_TRUE(server::ValidateRunReport(MakeReport("r", "s", 1, max), {}).ok());
  EXPECT_THAT(server::ValidateRunReport(MakeReport("r", "s", 1, 1e39), {}).message(),
              HasSubstr("metrics.e2e_latency_ms: must be in [0, 3.40282e+38] (got 1e+39)"));
}

TEST(ValidateTest, GoodReportPasses) { EXPECT_TRUE(server::ValidateRunReport(MakeReport("r", "s", 1, 10), {}).ok()); }

TEST(ValidateTest, IdsAreBoundedAndRestrictedToASafeAlphabet) {
  server::ValidationLimits limits;
  EXPECT_TRUE(server::ValidateId("run_id", std::string(128, 'a'), limits).ok());
  EXPECT_THAT(server::ValidateId("run_id", std::string(129, 'a'), limits).message(),
              HasSubstr("run_id: must be at most 128"));
  EXPECT_THAT(server::ValidateId("run_id", "", limits).message(), HasSubstr("run_id: is required"));
  EXPECT_THAT(server::ValidateId("run_id", "a b", limits).message(), HasSubstr("may contain only"));
  EXPECT_THAT(server::ValidateId("run_id", "a\n", limits).message(), HasSubstr("may contain only"));
  EXPECT_TRUE(server::ValidateId("run_id", "node-1/run.42:x+y=z_", limits).ok());
}

TEST(ValidateTest, MetricsMustBeFiniteAndNonNegative) {
  const double bad_values[] = {-1.0, std::nan(""), std::numeric_limits<double>::infinity()};
  for (double v : bad_values) {
    auto r = MakeReport("r", "s", 1, 10);
    r.mutable_metrics()->set_ttft_ms(v);
    auto st = server::ValidateRunReport(r, {});
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("metrics.ttft_ms"));
  }
  auto zero = MakeReport("r", "s", 1, 0);
  zero.mutable_metrics()->set_throughput_tokens_per_s(0);
  EXPECT_TRUE(server::ValidateRunReport(zero, {}).ok());
}

TEST(ValidateTest, OkRunNeedsAMeasurementButAFailureDoesNot) {
  auto r = MakeReport("r", "s", 1, 10);
  r.clear_metrics();
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("an OK run needs"));
  r.set_status(v1::RUN_STATUS_OOM);
  EXPECT_TRUE(server::ValidateRunReport(r, {}).ok());
  r.set_status(v1::RUN_STATUS_UNSPECIFIED);
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("status"));
}

TEST(ValidateTest, ReportStructure) {
  auto r = MakeReport("r", "s", 1, 10);
  r.clear_context();
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("context: is required"));
  r = MakeReport("r", "s", 1, 10);
  r.clear_node_id();
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("node_id: is required"));
  r = MakeReport("r", "s", 1, 10);
  r.set_schema_version(7);
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("schema_version"));
  r = MakeReport("r", "s", 1, 10);
  *r.mutable_strategy() = MakeStrategy("other");
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("strategy_id: must equal strategy.id"));
  r = MakeReport("r", "s", 1, 10);
  r.mutable_context()->mutable_workload()->set_shared_prefix_ratio(1.5);
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("shared_prefix_ratio: must be <= 1"));
  r = MakeReport("r", "s", 1, 10);
  (*r.mutable_context()->mutable_extra())["x"] = std::nan("");
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("context.extra[\"x\"]: must be finite"));
  r = MakeReport("r", "s", 1, 10);
  r.mutable_context()->mutable_model()->set_name(std::string(100 << 10, 'n'));
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("report: must be at most 65536 bytes"));
}

TEST(ValidateTest, StrategyComponents) {
  v1::Strategy s = MakeStrategy("x");
  EXPECT_TRUE(server::ValidateStrategy("strategy", s, {}).ok());
  s.mutable_components(0)->clear_value();
  EXPECT_THAT(server::ValidateStrategy("strategy", s, {}).message(), HasSubstr("strategy.components[0].value"));
}

// Report times order the training scan and date a strategy's level changes: a negative one is refused, 0 (unset,
// the server stamps it) is not.
TEST(ValidateTest, NegativeReportTimeIsRefused) {
  for (int64_t t : {int64_t{-1}, int64_t{-86400000}, std::numeric_limits<int64_t>::min()}) {
    auto r = MakeReport("r", "s", 1, 10);
    r.set_time_unix_ms(t);
    const auto st = server::ValidateRunReport(r, {});
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << t;
    EXPECT_THAT(st.message(), HasSubstr("time_unix_ms: must be >= 0")) << t;
  }
  for (int64_t t : {int64_t{0}, int64_t{1}, int64_t{1767225600000}}) {
    auto r = MakeReport("r", "s", 1, 10);
    r.set_time_unix_ms(t);
    EXPECT_TRUE(server::ValidateRunReport(r, {}).ok()) << t;
  }
}

// Every measurement, not only the first one checked, must be finite and non-negative.
TEST(ValidateTest, EveryMetricMustBeFiniteAndNonNegative) {
  using Setter = void (v1::RunMetrics::*)(double);
  const std::pair<const char*, Setter> fields[] = {
      {"metrics.ttft_ms", &v1::RunMetrics::set_ttft_ms},
      {"metrics.tpot_ms", &v1::RunMetrics::set_tpot_ms},
      {"metrics.e2e_latency_ms", &v1::RunMetrics::set_e2e_latency_ms},
      {"metrics.throughput_tokens_per_s", &v1::RunMetrics::set_throughput_tokens_per_s},
      {"metrics.peak_memory_gb", &v1::RunMetrics::set_peak_memory_gb},
  };
  const double bad_values[] = {-1.0, std::nan(""), std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity()};
  for (const auto& [name, set] : fields) {
    for (double v : bad_values) {
      auto r = MakeReport("r", "s", 1, 10);
      (r.mutable_metrics()->*set)(v);
      const auto st = server::ValidateRunReport(r, {});
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << name << " = " << v;
      EXPECT_THAT(st.message(), HasSubstr(name)) << v;
    }
    auto r = MakeReport("r", "s", 1, 10);
    (r.mutable_metrics()->*set)(0);
    EXPECT_TRUE(server::ValidateRunReport(r, {}).ok()) << name << " = 0";
  }
}

TEST(ValidateTest, FailureProbabilityBoundIsAProbability) {
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(1);
  for (double p : {0.0, 0.5, 1.0}) {
    req.mutable_constraints()->set_max_failure_probability(p);
    EXPECT_TRUE(server::ValidateSelectRequest(req, {}).ok()) << p;
  }
  for (double p : {-0.1, 1.5, 50.0, std::nan("")}) {
    req.mutable_constraints()->set_max_failure_probability(p);
    EXPECT_THAT(server::ValidateSelectRequest(req, {}).message(),
                HasSubstr("constraints.max_failure_probability: must be in [0, 1]"))
        << p;
  }
}

TEST(ValidateTest, ActiveExpertsCannotExceedExperts) {
  auto r = MakeReport("r", "s", 1, 10);
  r.mutable_context()->mutable_model()->set_experts(8);
  r.mutable_context()->mutable_model()->set_active_experts(2);
  EXPECT_TRUE(server::ValidateRunReport(r, {}).ok());
  r.mutable_context()->mutable_model()->set_active_experts(9);
  EXPECT_THAT(server::ValidateRunReport(r, {}).message(), HasSubstr("context.model.active_experts: must be <="));
}

// Every refusal names its field twice: in the message "field: rule" and as the google.rpc.BadRequest field
// violation {field, rule} the server sends in the status details.
TEST(ValidateTest, EveryRefusalCarriesItsFieldViolation) {
  std::vector<std::pair<std::string, absl::Status>> refusals;
  const auto report = [&](const std::string& field, const std::function<void(v1::RunReport*)>& mutate) {
    auto r = MakeReport("r", "s", 1, 10);
    mutate(&r);
    refusals.emplace_back(field, server::ValidateRunReport(r, {}));
  };
  report("run_id", [](auto* r) { r->set_run_id("a b"); });
  report("context", [](auto* r) { r->clear_context(); });
  report("context.model.name", [](auto* r) { r->mutable_context()->mutable_model()->clear_name(); });
  report("context.workload.batch_size", [](auto* r) { r->mutable_context()->mutable_workload()->set_batch_size(0); });
  report("context.embedding[0]", [](auto* r) { r->mutable_context()->add_embedding(std::nanf("")); });
  report("context.extra[\"x\"]", [](auto* r) { (*r->mutable_context()->mutable_extra())["x"] = std::nan(""); });
  report("strategy_id", [](auto* r) { *r->mutable_strategy() = MakeStrategy("other"); });
  report("strategy.components[0].value", [](auto* r) {
    *r->mutable_strategy() = MakeStrategy("s");
    r->mutable_strategy()->mutable_components(0)->clear_value();
  });
  report("status", [](auto* r) { r->set_status(v1::RUN_STATUS_UNSPECIFIED); });
  report("metrics.tpot_ms", [](auto* r) { r->mutable_metrics()->set_tpot_ms(-1); });
  report("metrics", [](auto* r) { r->clear_metrics(); });
  report("report", [](auto* r) { r->mutable_context()->mutable_model()->set_name(std::string(100 << 10, 'n')); });
  v1::SelectAcceleratorRequest select;
  *select.mutable_context() = MakeContext(1);
  select.set_top_k(100000);
  refusals.emplace_back("top_k", server::ValidateSelectRequest(select, {}));
  select.set_top_k(0);
  select.add_candidate_ids("a");
  select.add_candidate_ids("a");
  refusals.emplace_back("candidate_ids[1]", server::ValidateSelectRequest(select, {}));
  refusals.emplace_back("page_token", server::ValidateId("page_token", "", {}));

  for (const auto& [field, st] : refusals) {
    ASSERT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field << ": " << st;
    const auto payload = st.GetPayload(server::kBadRequestTypeUrl);
    ASSERT_TRUE(payload.has_value()) << field;
    google::rpc::BadRequest bad;
    ASSERT_TRUE(bad.ParseFromString(std::string(*payload))) << field;
    ASSERT_EQ(bad.field_violations_size(), 1) << field;
    EXPECT_EQ(bad.field_violations(0).field(), field);
    EXPECT_EQ(absl::StrCat(field, ": ", bad.field_violations(0).description()), st.message());
  }
}

}  // namespace
}  // namespace accelsel::testing
