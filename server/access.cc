// AccessControl: bearer-token authentication, roles, per-node token buckets and stream slots.
#include "server/access.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/grpc_status.h"

namespace accelsel::server {

bool NodeMayCall(Method method) {
  switch (method) {
    case Method::kSelectAccelerator:
    case Method::kReportRun:
    case Method::kListStrategies:
    case Method::kGetModelInfo:
    case Method::kNull: return true;
    default: return false;
  }
}

bool TokenBucket::TryTake(double n, absl::Time now, absl::Duration* wait) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + rate_per_s_ * absl::ToDoubleSeconds(now - last_));
    last_ = now;
  }
  if (tokens_ >= n) {
    tokens_ -= n;
    return true;
  }
  // A request larger than the bucket can never pass whole; report the time to refill the bucket.
  const double missing = std::min(n, burst_) - tokens_;
  *wait = absl::Seconds(std::max(missing, 0.0) / rate_per_s_);
  return false;
}

AccessControl::AccessControl(const AccessOptions& options)
    : options_(options),
      refusals_(log::IntervalSummaryOptions{.level = log::Level::kWarn,
                                            .event = "rate_limited",
                                            .count_field = "refused",
                                            .key_field = "node",
                                            .max_keys = 1000,
                                            .constant_fields = {},
                                            .interval = options.refusal_log_interval}) {}

absl::StatusOr<std::unique_ptr<AccessControl>> AccessControl::Create(const AccessOptions& options) {
  std::unique_ptr<AccessControl> ac(new AccessControl(options));
  if (!options.auth_tokens_file.empty()) {
    auto count = ac->ReloadTokens();
    if (!count.ok()) return count.status();
  }
  return ac;
}

absl::StatusOr<size_t> AccessControl::ReloadTokens() {
  if (!auth_enabled()) return absl::FailedPreconditionError("no --auth_tokens file to reload");
  auto tokens = ReadAuthTokensFile(options_.auth_tokens_file);
  if (!tokens.ok()) return tokens.status();
  auto fresh = std::make_shared<const TokenMap>(*std::move(tokens));
  const size_t count = fresh->size();
  std::shared_ptr<const TokenMap> old;
  {
    absl::MutexLock lock(&tokens_mu_);
    old = std::exchange(tokens_, std::move(fresh));
  }
  return count;  // `old` is freed here, outside the lock (or by the last call still holding it)
}

size_t AccessControl::token_count() const { return Tokens()->size(); }

std::shared_ptr<const AccessControl::TokenMap> AccessControl::Tokens() const {
  absl::ReaderMutexLock lock(&tokens_mu_);
  return tokens_;
}

namespace {

// "ipv4:10.1.2.3:5555" -> "10.1.2.3"; "ipv6:[::1]:5555" -> "[::1]".
std::string PeerHost(const std::string& peer) {
  absl::string_view p = peer;
  if (const size_t colon = p.find(':'); colon != absl::string_view::npos && !absl::StartsWith(p, "[")) {
    p.remove_prefix(colon + 1);  // scheme
  }
  if (const size_t port = p.rfind(':'); port != absl::string_view::npos) p = p.substr(0, port);
  return std::string(p);
}

absl::Status NeedsOperator(absl::string_view what, absl::string_view node_id) {
  return absl::PermissionDeniedError(
      absl::StrCat(what, " needs the operator role; node \"", node_id, "\" has the node role"));
}

}  // namespace

absl::StatusOr<TokenEntry> AccessControl::Authenticate(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer TOKEN' metadata (CLI: --token or $ACCELSEL_TOKEN)");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) {
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer TOKEN'");
  }
  const std::shared_ptr<const TokenMap> tokens = Tokens();
  auto entry = tokens->find(absl::StripAsciiWhitespace(value));
  if (entry == tokens->end()) return absl::UnauthenticatedError("unknown bearer token");
  return entry->second;
}

absl::Status AccessControl::AdmitOperator(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                          absl::string_view service) const {
  if (!auth_enabled()) return absl::OkStatus();
  auto entry = Authenticate(metadata);
  if (!entry.ok()) return entry.status();
  if (entry->role != Role::kOperator) return NeedsOperator(service, entry->node_id);
  return absl::OkStatus();
}

absl::Status AccessControl::Admit(grpc::CallbackServerContext* ctx, Method method, Principal* principal) {
  if (auth_enabled()) {
    auto entry = Authenticate(ctx->client_metadata());
    if (!entry.ok()) return entry.status();
    principal->authenticated = true;
    principal->role = entry->role;
    principal->limit_key = entry->node_id;
    principal->node_id = std::move(entry->node_id);
    if (principal->role == Role::kNode && !NodeMayCall(method)) {
      return NeedsOperator(MethodName(method), principal->node_id);
    }
  } else {
    principal->authenticated = false;
    principal->role = Role::kOperator;
    principal->limit_key = absl::StrCat("peer:", PeerHost(ctx->peer()));
  }
  if (!LimitsApply(*principal) || method == Method::kReportRun || options_.calls_per_s <= 0) {
    return absl::OkStatus();
  }
  const absl::Time now = absl::Now();
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    if (StateLocked(principal->limit_key, now).calls.TryTake(1, now, &wait)) return absl::OkStatus();
  }
  return Exhausted(ctx, principal->limit_key,
                   absl::StrCat("call rate limit of ", options_.calls_per_s, "/s for ", principal->limit_key), wait);
}

absl::Status AccessControl::AdmitReports(grpc::CallbackServerContext* ctx, const Principal& principal, int n) {
  if (!LimitsApply(principal) || options_.reports_per_s <= 0) return absl::OkStatus();
  const absl::Time now = absl::Now();
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    if (StateLocked(principal.limit_key, now).reports.TryTake(n, now, &wait)) return absl::OkStatus();
  }
  return Exhausted(ctx, principal.limit_key,
                   absl::StrCat("report rate limit of ", options_.reports_per_s, "/s for ", principal.limit_key), wait);
}

absl::Status AccessControl::AcquireStream(grpc::CallbackServerContext* ctx, const Principal& principal) {
  if (!LimitsApply(principal)) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  NodeState& s = StateLocked(principal.limit_key, absl::Now());
  if (options_.max_streams_per_node > 0 && s.streams >= options_.max_streams_per_node) {
    return Exhausted(ctx, principal.limit_key,
                     absl::StrCat(principal.limit_key, " already has ", s.streams, " ReportRun streams open (limit ",
                                  options_.max_streams_per_node, ")"),
                     absl::Seconds(1));
  }
  ++s.streams;
  return absl::OkStatus();
}

void AccessControl::ReleaseStream(const Principal& principal) {
  if (!LimitsApply(principal)) return;
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(principal.limit_key);
  if (it != nodes_.end() && it->second.streams > 0) --it->second.streams;
}

size_t AccessControl::tracked_nodes() const {
  absl::MutexLock lock(&mu_);
  return nodes_.size();
}

AccessControl::NodeState& AccessControl::StateLocked(const std::string& key, absl::Time now) {
  auto it = nodes_.find(key);
  if (it != nodes_.end()) return it->second;
  if (nodes_.size() >= options_.max_tracked_nodes) {
    // Forget nodes without open streams, idle ones first; a forgotten node starts again with full buckets.
    const absl::Time idle_before = now - absl::Minutes(1);
    absl::erase_if(nodes_, [&](const auto& kv) {
      return kv.second.streams == 0 && kv.second.calls.last_use() < idle_before &&
             kv.second.reports.last_use() < idle_before;
    });
    if (nodes_.size() >= options_.max_tracked_nodes) {
      absl::erase_if(nodes_, [](const auto& kv) { return kv.second.streams == 0; });
    }
  }
  const double call_rate = options_.calls_per_s > 0 ? options_.calls_per_s : 1;
  const double report_rate = options_.reports_per_s > 0 ? options_.reports_per_s : 1;
  return nodes_
      .emplace(key, NodeState{TokenBucket(call_rate, std::max(1.0, options_.call_burst), now),
                              TokenBucket(report_rate, std::max(1.0, options_.report_burst), now), 0})
      .first->second;
}

absl::Status AccessControl::Exhausted(grpc::CallbackServerContext* ctx, const std::string& key, const std::string& what,
                                      absl::Duration wait) {
  refusals_.Add(key);
  const int64_t retry_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
  // The same wait three ways: gRPC's retry pushback (honoured by gRPC's own retry policy), the retry-after-ms of
  // earlier releases, and google.rpc.RetryInfo in the status details.
  ctx->AddTrailingMetadata("grpc-retry-pushback-ms", std::to_string(retry_ms));
  ctx->AddTrailingMetadata("retry-after-ms", std::to_string(retry_ms));
  return WithRetryDelay(absl::ResourceExhaustedError(absl::StrCat(what, "; retry after ", retry_ms, " ms")),
                        absl::Milliseconds(retry_ms));
}

}  // namespace accelsel::server
