// Validation rules, written once and shared by every RPC (and by the fuzz targets).
#include "server/validate.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"
#include "util/status_macros.h"

namespace accelsel::server {
namespace {

// A field's name, put together only when a rule fails: checking a valid message builds no strings (on the
// ReportRun path the eager concatenations were most of validation's cost).
struct Field {
  // Implicit on purpose: a plain name is a field. NOLINTNEXTLINE(google-explicit-constructor)
  Field(absl::string_view name) : prefix(name) {}
  Field(const char* name) : prefix(name) {}         // NOLINT(google-explicit-constructor)
  Field(const std::string& name) : prefix(name) {}  // NOLINT(google-explicit-constructor)
  Field(absl::string_view p, absl::string_view s) : prefix(p), suffix(s) {}
  absl::string_view prefix, suffix;
};

// INVALID_ARGUMENT naming the field in its message and in its google.rpc.BadRequest details.
absl::Status Invalid(const Field& field, absl::string_view rule) {
  return InvalidField(absl::StrCat(field.prefix, field.suffix), rule);
}

bool IdChar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
         ch == ':' || ch == '/' || ch == '+' || ch == '=' || ch == '-';
}

absl::Status ValidateName(const Field& field, absl::string_view value, bool required, const ValidationLimits& limits) {
  if (required && value.empty()) return Invalid(field, "is required");
  if (value.size() > limits.max_name_chars) {
    return Invalid(field,
                   absl::StrCat("must be at most ", limits.max_name_chars, " characters (got ", value.size(), ")"));
  }
  for (unsigned char ch : value) {
    if (ch < 0x20 || ch == 0x7f) return Invalid(field, "must not contain control characters");
  }
  return absl::OkStatus();
}

// Measurements and descriptors are kept as float by the statistics and the model: a finite double beyond float
// range would become infinity there (an estimate of 0 with "no evidence"), so it is refused here.
constexpr double kMaxValue = std::numeric_limits<float>::max();

absl::Status FiniteNonNegative(const Field& field, double v) {
  if (!std::isfinite(v)) return Invalid(field, "must be finite");
  if (v < 0) return Invalid(field, absl::StrCat("must be >= 0 (got ", v, ")"));
  if (v > kMaxValue) return Invalid(field, absl::StrCat("must be in [0, ", kMaxValue, "] (got ", v, ")"));
  return absl::OkStatus();
}

absl::Status FiniteInFloatRange(const Field& field, double v) {
  if (!std::isfinite(v)) return Invalid(field, "must be finite");
  if (std::fabs(v) > kMaxValue) {
    return Invalid(field, absl::StrCat("must be in [", -kMaxValue, ", ", kMaxValue, "] (got ", v, ")"));
  }
  return absl::OkStatus();
}

bool ClearUnknown(google::protobuf::Message* m) {
  const google::protobuf::Reflection* r = m->GetReflection();
  if (r->GetUnknownFields(*m).empty()) return false;
  r->MutableUnknownFields(m)->Clear();
  return true;
}

absl::Status CheckId(const Field& field, absl::string_view value, const ValidationLimits& limits) {
  if (value.empty()) return Invalid(field, "is required (1 to " + std::to_string(limits.max_id_chars) + " characters)");
  if (value.size() > limits.max_id_chars) {
    return Invalid(field,
                   absl::StrCat("must be at most ", limits.max_id_chars, " characters (got ", value.size(), ")"));
  }
  for (char ch : value) {
    if (!IdChar(ch)) return Invalid(field, "may contain only letters, digits and . _ : / + = -");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateId(absl::string_view field, absl::string_view value, const ValidationLimits& limits) {
  return CheckId(Field(field), value, limits);
}

absl::Status ValidateContext(absl::string_view field, const v1::TaskContext& c, const ValidationLimits& limits) {
  const absl::string_view f = field;
  const auto& m = c.model();
  ACCELSEL_RETURN_IF_ERROR(ValidateName(Field(f, ".model.name"), m.name(), true, limits));
  ACCELSEL_RETURN_IF_ERROR(ValidateName(Field(f, ".model.family"), m.family(), false, limits));
  ACCELSEL_RETURN_IF_ERROR(ValidateName(Field(f, ".model.weight_dtype"), m.weight_dtype(), false, limits));
  ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative(Field(f, ".model.parameters_b"), m.parameters_b()));
  if (m.active_experts() > m.experts() && m.experts() > 0) {
    return Invalid(Field(f, ".model.active_experts"), "must be <= model.experts");
  }
  const auto& h = c.hardware();
  ACCELSEL_RETURN_IF_ERROR(ValidateName(Field(f, ".hardware.accelerator"), h.accelerator(), true, limits));
  ACCELSEL_RETURN_IF_ERROR(ValidateName(Field(f, ".hardware.interconnect"), h.interconnect(), false, limits));
  if (h.count() < 1) return Invalid(Field(f, ".hardware.count"), "must be >= 1 (got 0)");
  if (h.count() > 65536) return Invalid(Field(f, ".hardware.count"), "must be <= 65536");
  ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative(Field(f, ".hardware.memory_gb"), h.memory_gb()));
  ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative(Field(f, ".hardware.memory_bandwidth_gbps"), h.memory_bandwidth_gbps()));
  ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative(Field(f, ".hardware.peak_tflops"), h.peak_tflops()));
  ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative(Field(f, ".hardware.price_per_hour"), h.price_per_hour()));
  const auto& w = c.workload();
  if (w.batch_size() < 1) return Invalid(Field(f, ".workload.batch_size"), "must be >= 1 (got 0)");
  ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative(Field(f, ".workload.request_rate_per_s"), w.request_rate_per_s()));
  ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative(Field(f, ".workload.shared_prefix_ratio"), w.shared_prefix_ratio()));
  if (w.shared_prefix_ratio() > 1) return Invalid(Field(f, ".workload.shared_prefix_ratio"), "must be <= 1");
  ACCELSEL_RETURN_IF_ERROR(ValidateName(Field(f, ".workload.dataset"), w.dataset(), false, limits));
  if (static_cast<size_t>(c.embedding_size()) > limits.max_embedding) {
    return Invalid(Field(f, ".embedding"),
                   absl::StrCat("must have at most ", limits.max_embedding, " values (got ", c.embedding_size(), ")"));
  }
  for (int i = 0; i < c.embedding_size(); ++i) {
    if (!std::isfinite(c.embedding(i))) return Invalid(absl::StrCat(f, ".embedding[", i, "]"), "must be finite");
  }
  if (c.extra_size() > static_cast<int>(limits.max_extra)) {
    return Invalid(Field(f, ".extra"),
                   absl::StrCat("must have at most ", limits.max_extra, " entries (got ", c.extra_size(), ")"));
  }
  for (const auto& [k, v] : c.extra()) {
    ACCELSEL_RETURN_IF_ERROR(ValidateName(Field(f, ".extra key"), k, true, limits));
    ACCELSEL_RETURN_IF_ERROR(FiniteInFloatRange(absl::StrCat(f, ".extra[\"", k, "\"]"), v));
  }
  return absl::OkStatus();
}

absl::Status ValidateStrategy(absl::string_view field, const v1::Strategy& s, const ValidationLimits& limits) {
  const std::string f(field);
  if (const size_t bytes = s.ByteSizeLong(); bytes > limits.max_strategy_bytes) {
    return Invalid(f,
                   absl::StrCat("must be at most ", limits.max_strategy_bytes, " bytes serialized (got ", bytes, ")"));
  }
  ACCELSEL_RETURN_IF_ERROR(ValidateId(f + ".id", s.id(), limits));
  if (s.retired()) return Invalid(f + ".retired", "is set by the server only; use RetireStrategy to retire");
  if (static_cast<size_t>(s.components_size()) > limits.max_components) {
    return Invalid(f + ".components", absl::StrCat("must have at most ", limits.max_components, " entries"));
  }
  for (int i = 0; i < s.components_size(); ++i) {
    const auto& c = s.components(i);
    const std::string cf = absl::StrCat(f, ".components[", i, "]");
    ACCELSEL_RETURN_IF_ERROR(ValidateId(cf + ".method", c.method(), limits));
    ACCELSEL_RETURN_IF_ERROR(ValidateName(cf + ".value", c.value(), true, limits));
  }
  return ValidateName(f + ".description", s.description(), false, limits);
}

absl::Status ValidateRunReport(const v1::RunReport& r, const ValidationLimits& limits) {
  const size_t bytes = r.ByteSizeLong();
  if (bytes > limits.max_report_bytes) {
    return Invalid("report",
                   absl::StrCat("must be at most ", limits.max_report_bytes, " bytes serialized (got ", bytes, ")"));
  }
  ACCELSEL_RETURN_IF_ERROR(ValidateId("run_id", r.run_id(), limits));
  ACCELSEL_RETURN_IF_ERROR(ValidateId("node_id", r.node_id(), limits));
  if (r.schema_version() > 1) {
    return Invalid("schema_version", absl::StrCat("must be 0 or 1 (got ", r.schema_version(), ")"));
  }
  if (r.time_unix_ms() < 0) return Invalid("time_unix_ms", "must be >= 0");
  if (!r.has_context()) return Invalid("context", "is required");
  ACCELSEL_RETURN_IF_ERROR(ValidateContext("context", r.context(), limits));
  if (r.has_strategy()) {
    ACCELSEL_RETURN_IF_ERROR(ValidateStrategy("strategy", r.strategy(), limits));
    if (!r.strategy_id().empty() && r.strategy_id() != r.strategy().id()) {
      return Invalid("strategy_id", "must equal strategy.id when both are set");
    }
  } else {
    ACCELSEL_RETURN_IF_ERROR(ValidateId("strategy_id", r.strategy_id(), limits));
  }
  if (!r.decision_id().empty()) ACCELSEL_RETURN_IF_ERROR(ValidateId("decision_id", r.decision_id(), limits));
  if (r.status() == v1::RUN_STATUS_UNSPECIFIED || !v1::RunStatus_IsValid(r.status())) {
    return Invalid("status", "must be one of OK, OOM, TIMEOUT, CRASH, NOT_APPLICABLE");
  }
  const auto& m = r.metrics();
  if (m.has_ttft_ms()) ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("metrics.ttft_ms", m.ttft_ms()));
  if (m.has_tpot_ms()) ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("metrics.tpot_ms", m.tpot_ms()));
  if (m.has_e2e_latency_ms()) ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("metrics.e2e_latency_ms", m.e2e_latency_ms()));
  if (m.has_throughput_tokens_per_s()) {
    ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("metrics.throughput_tokens_per_s", m.throughput_tokens_per_s()));
  }
  if (m.has_peak_memory_gb()) ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("metrics.peak_memory_gb", m.peak_memory_gb()));
  if (r.status() == v1::RUN_STATUS_OK && !m.has_e2e_latency_ms() && !m.has_ttft_ms() &&
      !m.has_throughput_tokens_per_s()) {
    return Invalid("metrics", "an OK run needs at least one of e2e_latency_ms, ttft_ms, throughput_tokens_per_s");
  }
  return absl::OkStatus();
}

absl::Status ValidateSelectRequest(const v1::SelectAcceleratorRequest& r, const ValidationLimits& limits) {
  const size_t bytes = r.ByteSizeLong();
  if (bytes > limits.max_select_bytes) {
    return Invalid("request",
                   absl::StrCat("must be at most ", limits.max_select_bytes, " bytes serialized (got ", bytes, ")"));
  }
  if (!r.has_context()) return Invalid("context", "is required");
  ACCELSEL_RETURN_IF_ERROR(ValidateContext("context", r.context(), limits));
  if (static_cast<size_t>(r.candidate_ids_size()) > limits.max_candidates) {
    return Invalid("candidate_ids", absl::StrCat("must have at most ", limits.max_candidates, " entries (got ",
                                                 r.candidate_ids_size(), ")"));
  }
  absl::flat_hash_set<absl::string_view> seen;
  seen.reserve(r.candidate_ids_size());
  for (int i = 0; i < r.candidate_ids_size(); ++i) {
    if (absl::Status st = CheckId("x", r.candidate_ids(i), limits); !st.ok()) {
      return ValidateId(absl::StrCat("candidate_ids[", i, "]"), r.candidate_ids(i), limits);  // names the field
    }
    if (!seen.insert(r.candidate_ids(i)).second) {
      return Invalid(absl::StrCat("candidate_ids[", i, "]"),
                     absl::StrCat("duplicate candidate \"", r.candidate_ids(i), "\""));
    }
  }
  if (!v1::Objective_IsValid(r.objective())) return Invalid("objective", "unknown objective");
  if (r.top_k() > limits.max_top_k) {
    return Invalid("top_k", absl::StrCat("must be <= ", limits.max_top_k, " (got ", r.top_k(), ")"));
  }
  if (!r.node_id().empty()) ACCELSEL_RETURN_IF_ERROR(ValidateId("node_id", r.node_id(), limits));
  const auto& c = r.constraints();
  if (c.has_max_latency_ms())
    ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("constraints.max_latency_ms", c.max_latency_ms()));
  if (c.has_max_cost()) ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("constraints.max_cost", c.max_cost()));
  if (c.has_max_memory_gb())
    ACCELSEL_RETURN_IF_ERROR(FiniteNonNegative("constraints.max_memory_gb", c.max_memory_gb()));
  if (c.has_max_failure_probability()) {
    const double p = c.max_failure_probability();
    if (!std::isfinite(p) || p < 0 || p > 1) return Invalid("constraints.max_failure_probability", "must be in [0, 1]");
  }
  return absl::OkStatus();
}

bool StripUnknownFields(v1::Strategy* s) {
  bool any = ClearUnknown(s);
  for (auto& c : *s->mutable_components()) any |= ClearUnknown(&c);
  return any;
}

bool StripUnknownFields(v1::RunReport* r) {
  bool any = ClearUnknown(r);
  if (r->has_context()) {
    v1::TaskContext* c = r->mutable_context();
    any |= ClearUnknown(c);
    if (c->has_model()) any |= ClearUnknown(c->mutable_model());
    if (c->has_hardware()) any |= ClearUnknown(c->mutable_hardware());
    if (c->has_workload()) any |= ClearUnknown(c->mutable_workload());
  }
  if (r->has_strategy()) any |= StripUnknownFields(r->mutable_strategy());
  if (r->has_metrics()) any |= ClearUnknown(r->mutable_metrics());
  return any;
}

}  // namespace accelsel::server
