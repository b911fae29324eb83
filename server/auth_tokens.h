// The --auth_tokens file (who may call, in which role, as which node) and the loopback test that decides whether
// the server may run without it. Pure parsing, no gRPC: fuzz/fuzz_validate.cc feeds it arbitrary text.
//
// Thread safety: free functions without shared state; any may be called from any thread. The parsed map is owned
// by the caller; AccessControl publishes each parsed map as an immutable snapshot that every RPC thread reads and
// that a reload (SIGHUP, or the file watch) replaces whole.
#ifndef ACCELSEL_SERVER_AUTH_TOKENS_H_
#define ACCELSEL_SERVER_AUTH_TOKENS_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace accelsel::server {

enum class Role { kNode, kOperator };

// One "TOKEN ROLE NODE_ID" per line, '#' starts a comment, ROLE is "node" or "operator". Tokens must be unique and
// at least 16 characters long; node ids follow the id rule of every other id (server/validate.h), because they are
// stored with each run the node reports and appear in metric labels.
struct TokenEntry {
  Role role;
  std::string node_id;
};
absl::StatusOr<absl::flat_hash_map<std::string, TokenEntry>> ParseAuthTokens(const std::string& text);

// Reads and parses the token file. Refused when group or others may write it: whoever can write it can make
// themselves an operator.
absl::StatusOr<absl::flat_hash_map<std::string, TokenEntry>> ReadAuthTokensFile(const std::string& path);

// "127.0.0.1:50051", "127.1.2.3:1", "localhost:0", "[::1]:1" -> true; "0.0.0.0:50051", "10.0.0.5:1",
// "127.evil.example:1" -> false. The host is parsed as an address, never matched by prefix.
bool IsLoopbackAddress(const std::string& listen);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_AUTH_TOKENS_H_
