// Hand-written flag parsing for the `accelsel` CLI: each subcommand declares its own flags, so nothing is
// global (absl flags would share one namespace across every subcommand) and tests can parse in-process.
#ifndef ACCELSEL_CLIENT_CLI_ARGS_H_
#define ACCELSEL_CLIENT_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.pb.h"
#include "client/client.h"

namespace accelsel::client::cli {

struct FlagSpec {
  std::string name;          // without the leading "--"
  bool takes_value = false;  // false = boolean switch
  std::string value_name;    // for help, e.g. "ADDR"
  std::string help;
};

struct ParsedFlags {
  std::map<std::string, std::string> values;  // switches map to ""
  std::vector<std::string> positional;

  bool Has(const std::string& name) const { return values.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
};

// Accepts "--name value", "--name=value", "--switch" and "-h" (= --help); "--" ends the flags; '-' and '_'
// in a flag name are interchangeable (values are stored under the spec's spelling). An unknown
// flag, a missing value, a value given to a switch or a repeated flag is INVALID_ARGUMENT naming it.
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs);

// The flags every server-facing command takes: --server, --token, --tls_ca, --deadline_ms (and --help).
std::vector<FlagSpec> CommonFlags();

// ClientOptions from the common flags, falling back to $ACCELSEL_SERVER / $ACCELSEL_TOKEN, then defaults. The
// address is checked with ChannelTarget, whose error names --server or $ACCELSEL_SERVER.
absl::StatusOr<ClientOptions> ClientOptionsFromFlags(const ParsedFlags& flags);

// "e2e_latency" | "ttft" | "tpot" | "throughput" | "cost".
absl::StatusOr<v1::Objective> ParseObjective(const std::string& text);
std::string ObjectiveName(v1::Objective objective);

// "a,b" -> {"a","b"}; blanks around ids are trimmed; an empty id or a repeated one is an error.
absl::StatusOr<std::vector<std::string>> ParseCandidates(const std::string& text);

absl::StatusOr<uint64_t> ParseUint(const std::string& flag, const std::string& text);

// A duration in absl's syntax (300ms, 90s, 30m, 1h30m, 168h; a sign and fractions allowed) or whole days ("7d",
// which absl does not know). Errors name `flag`.
absl::StatusOr<absl::Duration> ParseDuration(const std::string& flag, const std::string& text);

// The JSON mapping of TaskContext from a file; unknown fields are errors (they are usually typos).
absl::StatusOr<v1::TaskContext> ParseTaskContextJson(const std::string& json);
absl::StatusOr<v1::TaskContext> ReadTaskContextFile(const std::string& path);

// One RunReport JSON object per line; blank lines are skipped. Errors name the file and line.
absl::StatusOr<std::vector<v1::RunReport>> ReadRunReportsJsonl(const std::string& path);

}  // namespace accelsel::client::cli

#endif  // ACCELSEL_CLIENT_CLI_ARGS_H_
