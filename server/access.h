// AccessControl: who may call what, and how often. Authenticates bearer tokens (--auth_tokens), checks the
// caller's role against the method, and enforces per-node rate limits and the per-node ReportRun stream cap.
// Every RPC of our services passes through it once (services.cc); health and reflection do not; channelz
// (--channelz) is refused to non-operators by an interceptor that asks AdmitOperator (server/interceptors.h). Refusals
// by the rate limits and the stream cap are logged as one "rate_limited" line per interval (util/log_summary.h), never
// one per call.
//
// Thread safety: one AccessControl serves every RPC thread at once; all public methods may be called
// concurrently. The options are immutable after Create and read without a lock. The token table is an immutable
// snapshot behind a shared_ptr: ReloadTokens builds a new one and swaps the pointer under tokens_mu_, and each call
// copies the pointer under a reader lock (one reference-count increment), so a call in progress keeps the table it
// started with. mu_ guards the per-node state (token buckets, open stream counts) and is held only while one
// node's entry is read or updated.
// Ownership: the server owns it (server.cc) and outlives the services, which borrow it; Principal is a value the
// calling RPC owns.
#ifndef ACCELSEL_SERVER_ACCESS_H_
#define ACCELSEL_SERVER_ACCESS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "server/auth_tokens.h"
#include "server/metrics.h"
#include "util/log_summary.h"

namespace accelsel::server {

// The authenticated caller. Without --auth_tokens every caller is an anonymous operator keyed by its peer
// address (so the rate limits still apply per client host).
struct Principal {
  bool authenticated = false;
  Role role = Role::kOperator;
  std::string node_id;    // from the token file; empty when anonymous
  std::string limit_key;  // what the rate limits count against: node id, or "peer:<host>" when anonymous
};

// True for methods a "node" may call: select, report, list strategies, model info.
bool NodeMayCall(Method method);

// A token bucket: `rate_per_s` tokens per second up to `burst`. Not thread-safe: AccessControl keeps its buckets
// in nodes_, guarded by its mu_.
class TokenBucket {
 public:
  TokenBucket(double rate_per_s, double burst, absl::Time now)
      : rate_per_s_(rate_per_s), burst_(burst), tokens_(burst), last_(now) {}
  // Takes `n` tokens if there are that many; otherwise returns how long until there will be.
  bool TryTake(double n, absl::Time now, absl::Duration* wait);
  absl::Time last_use() const { return last_; }

 private:
  double rate_per_s_;
  double burst_;
  double tokens_;
  absl::Time last_;
};

struct AccessOptions {
  // Path of the token file; empty = no authentication (only allowed on loopback unless allow_insecure).
  std::string auth_tokens_file;
  // Unary calls per second per node (token bucket), and the bucket size. 0 = unlimited.
  double calls_per_s = 100;
  double call_burst = 200;
  // Run reports per second per node, and the bucket size. 0 = unlimited.
  double reports_per_s = 5000;
  double report_burst = 20000;
  // Concurrent ReportRun streams per node. 0 = unlimited.
  uint32_t max_streams_per_node = 8;
  // Apply the limits to unauthenticated callers too, keyed by peer host. Off by default: without
  // authentication (loopback development, --allow_insecure on a trusted network) every local client — CLI,
  // benchmarks, tests — shares one key.
  bool limit_anonymous = false;
  // Nodes (or anonymous peers) tracked at once; idle ones are forgotten beyond this, so a flood of distinct
  // peers cannot grow memory without bound.
  size_t max_tracked_nodes = 100000;
  // Refusals (RESOURCE_EXHAUSTED by the rate limits or the stream cap) are summed up and logged as one
  // "rate_limited" line per interval in which any happened, naming the node refused most. 0 = no summary thread:
  // the line is written only when the AccessControl is destroyed (tests).
  absl::Duration refusal_log_interval = absl::Seconds(10);
};

class AccessControl {
 public:
  // Reads the token file (if any; see server/auth_tokens.h for its rules).
  static absl::StatusOr<std::unique_ptr<AccessControl>> Create(const AccessOptions& options);

  // Fixed at Create: a reload changes the tokens, never whether authentication is on.
  bool auth_enabled() const { return !options_.auth_tokens_file.empty(); }

  // Re-reads the token file with the rules of Create (server/auth_tokens.h: syntax, permissions) and, if it is good,
  // makes its tokens the ones later calls are checked against; returns how many tokens it holds. On error the
  // tokens stay as they were. Calls already admitted keep their Principal: an open ReportRun stream of a token
  // that was removed goes on until it ends. FAILED_PRECONDITION without --auth_tokens.
  absl::StatusOr<size_t> ReloadTokens() ABSL_LOCKS_EXCLUDED(tokens_mu_);
  size_t token_count() const ABSL_LOCKS_EXCLUDED(tokens_mu_);
  // The --auth_tokens path (empty without authentication).
  const std::string& tokens_file() const { return options_.auth_tokens_file; }

  // Authenticates the call, checks the role and takes one call from the node's bucket. On refusal returns
  // UNAUTHENTICATED / PERMISSION_DENIED / RESOURCE_EXHAUSTED (then with google.rpc.RetryInfo, and the trailers
  // "grpc-retry-pushback-ms" and "retry-after-ms" set on `ctx`, all three the same wait).
  absl::Status Admit(grpc::CallbackServerContext* ctx, Method method, Principal* principal) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes `n` reports from the node's report bucket; RESOURCE_EXHAUSTED (with the retry hints) when empty.
  absl::Status AdmitReports(grpc::CallbackServerContext* ctx, const Principal& principal, int n)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens / closes a ReportRun stream slot of the node; RESOURCE_EXHAUSTED when the node has too many.
  absl::Status AcquireStream(grpc::CallbackServerContext* ctx, const Principal& principal) ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseStream(const Principal& principal) ABSL_LOCKS_EXCLUDED(mu_);
  // For services other than ours (channelz), which only operators may call: OK for an operator token, and for
  // everyone without --auth_tokens (every caller is an anonymous operator then); else UNAUTHENTICATED or
  // PERMISSION_DENIED naming `service`. No rate limit.
  absl::Status AdmitOperator(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                             absl::string_view service) const;

  size_t tracked_nodes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit AccessControl(const AccessOptions& options);
  struct NodeState {
    TokenBucket calls;
    TokenBucket reports;
    uint32_t streams = 0;
  };
  bool LimitsApply(const Principal& p) const { return p.authenticated || options_.limit_anonymous; }
  using TokenMap = absl::flat_hash_map<std::string, TokenEntry>;
  std::shared_ptr<const TokenMap> Tokens() const ABSL_LOCKS_EXCLUDED(tokens_mu_);
  // The bearer token's entry (a copy: the table may be swapped once this returns); UNAUTHENTICATED when the metadata
  // carries none or an unknown one.
  absl::StatusOr<TokenEntry> Authenticate(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const
      ABSL_LOCKS_EXCLUDED(tokens_mu_);
  NodeState& StateLocked(const std::string& key, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Refuses a call of `key`'s: counts it for the "rate_limited" line, sets the retry trailers on `ctx` and returns
  // RESOURCE_EXHAUSTED with RetryInfo.
  absl::Status Exhausted(grpc::CallbackServerContext* ctx, const std::string& key, const std::string& what,
                         absl::Duration wait);

  AccessOptions options_;
  mutable absl::Mutex tokens_mu_;
  // Never null; a map, once published, is never modified.
  std::shared_ptr<const TokenMap> tokens_ ABSL_GUARDED_BY(tokens_mu_) = std::make_shared<const TokenMap>();
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, NodeState> nodes_ ABSL_GUARDED_BY(mu_);
  log::IntervalSummary refusals_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_ACCESS_H_
