// Flag parsing and input-file reading for the `accelsel` CLI.
#include "client/cli_args.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "util/file.h"

namespace accelsel::client::cli {

std::string ParsedFlags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() ? fallback : it->second;
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs) {
  // "--top-k" and "--top_k" are the same flag: people type either.
  auto canonical = [](std::string name) {
    for (char& c : name) {
      if (c == '_') c = '-';
    }
    return name;
  };
  std::map<std::string, const FlagSpec*> by_name;
  for (const auto& s : specs) by_name[canonical(s.name)] = &s;
  ParsedFlags out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      out.positional.insert(out.positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "-h") {
      out.values["help"] = "";
      continue;
    }
    if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
      if (arg.size() > 1 && arg[0] == '-') return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
      out.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_inline_value = true;
    }
    auto spec = by_name.find(canonical(name));
    if (spec == by_name.end()) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    name = spec->second->name;
    if (out.values.count(name) > 0) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " given twice"));
    if (spec->second->takes_value) {
      if (!has_inline_value) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
        value = args[++i];
      }
    } else if (has_inline_value) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
    }
    out.values[name] = value;
  }
  return out;
}

std::vector<FlagSpec> CommonFlags() {
  const ClientOptions defaults;  // the defaults are written once, in client/client.h
  return {
      {"server", true, "ADDR",
       absl::StrCat("server address host:port, replicas host:port,host:port,... (calls spread over them, moving on "
                    "when one fails), or a gRPC URI such as dns:///name:port (default $ACCELSEL_SERVER, else ",
                    defaults.target, ")")},
      {"token", true, "TOKEN", "bearer token sent as 'authorization: Bearer TOKEN' (default $ACCELSEL_TOKEN)"},
      {"tls_ca", true, "FILE", "PEM file of the CA that signs the server certificate (default: plaintext)"},
      {"tls_cert", true, "FILE", "PEM client certificate for servers that require mutual TLS (with --tls_key)"},
      {"tls_key", true, "FILE", "PEM private key of --tls_cert"},
      {"deadline_ms", true, "MS",
       absl::StrCat("deadline of each call including retries (default ", defaults.deadline_ms, ")")},
      {"help", false, "", "show this help"},
  };
}

absl::StatusOr<uint64_t> ParseUint(const std::string& flag, const std::string& text) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || absl::StrContains(text, "-")) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": \"", text, "\" is not a non-negative integer"));
  }
  return v;
}

absl::StatusOr<absl::Duration> ParseDuration(const std::string& flag, const std::string& text) {
  absl::Duration d;
  if (absl::ParseDuration(text, &d)) return d;
  const absl::string_view digits = absl::string_view(text).substr(0, text.empty() ? 0 : text.size() - 1);
  uint64_t days = 0;
  if (absl::EndsWith(text, "d") && !digits.empty() && std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) &&
      absl::SimpleAtoi(digits, &days) && days <= 1000000) {
    return absl::Hours(24) * static_cast<int64_t>(days);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": \"", text, "\" is not a duration (e.g. 90s, 30m, 1h30m, 7d)"));
}

absl::StatusOr<ClientOptions> ClientOptionsFromFlags(const ParsedFlags& flags) {
  ClientOptions options;
  const char* env_server = std::getenv("ACCELSEL_SERVER");
  const char* env_token = std::getenv("ACCELSEL_TOKEN");
  if (env_server != nullptr && *env_server != '\0') options.target = env_server;
  options.target = flags.Get("server", options.target);
  // Checked here, so a bad address is a usage error naming where it came from. The target stays as written: with
  // TLS, a list's first host name is the one the certificates must hold (MakeChannel).
  if (auto target = ChannelTarget(options.target, flags.Has("server") ? "--server" : "$ACCELSEL_SERVER");
      !target.ok()) {
    return target.status();
  }
  options.bearer_token = flags.Get("token", env_token != nullptr ? env_token : "");
  if (flags.Has("tls_ca")) {
    auto pem = util::ReadFile(flags.Get("tls_ca"));
    if (!pem.ok()) return pem.status();
    if (pem->empty()) return absl::InvalidArgumentError(absl::StrCat("--tls_ca ", flags.Get("tls_ca"), " is empty"));
    options.tls_root_ca_pem = *pem;
  }
  if (flags.Has("tls_cert") != flags.Has("tls_key")) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (flags.Has("tls_cert")) {
    if (!flags.Has("tls_ca")) return absl::InvalidArgumentError("--tls_cert needs --tls_ca (a TLS connection)");
    auto cert = util::ReadFile(flags.Get("tls_cert"));
    if (!cert.ok()) return cert.status();
    auto key = util::ReadFile(flags.Get("tls_key"));
    if (!key.ok()) return key.status();
    options.tls_client_cert_pem = *cert;
    options.tls_client_key_pem = *key;
  }
  if (flags.Has("deadline_ms")) {
    auto ms = ParseUint("--deadline_ms", flags.Get("deadline_ms"));
    if (!ms.ok()) return ms.status();
    if (*ms == 0 || *ms > 24ull * 3600 * 1000) {
      return absl::InvalidArgumentError("--deadline_ms must be between 1 and 86400000");
    }
    options.deadline_ms = static_cast<int64_t>(*ms);
  }
  if (auto s = ValidateClientOptions(options); !s.ok()) return s;
  return options;
}

absl::StatusOr<v1::Objective> ParseObjective(const std::string& text) {
  if (text == "e2e_latency") return v1::OBJECTIVE_E2E_LATENCY;
  if (text == "ttft") return v1::OBJECTIVE_TTFT;
  if (text == "tpot") return v1::OBJECTIVE_TPOT;
  if (text == "throughput") return v1::OBJECTIVE_THROUGHPUT;
  if (text == "cost") return v1::OBJECTIVE_COST;
  return absl::InvalidArgumentError(
      absl::StrCat("--objective: \"", text, "\" is not one of e2e_latency, ttft, tpot, throughput, cost"));
}

std::string ObjectiveName(v1::Objective objective) {
  switch (objective) {
    case v1::OBJECTIVE_TTFT: return "ttft";
    case v1::OBJECTIVE_TPOT: return "tpot";
    case v1::OBJECTIVE_THROUGHPUT: return "throughput";
    case v1::OBJECTIVE_COST: return "cost";
    default: return "e2e_latency";
  }
}

absl::StatusOr<std::vector<std::string>> ParseCandidates(const std::string& text) {
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::string id(absl::StripAsciiWhitespace(part));
    if (id.empty()) return absl::InvalidArgumentError(absl::StrCat("--candidates: empty id in \"", text, "\""));
    if (!seen.insert(id).second)
      return absl::InvalidArgumentError(absl::StrCat("--candidates: \"", id, "\" given twice"));
    ids.push_back(std::move(id));
  }
  return ids;
}

absl::StatusOr<v1::TaskContext> ParseTaskContextJson(const std::string& json) {
  if (absl::StripAsciiWhitespace(json).empty()) return absl::InvalidArgumentError("empty JSON");
  v1::TaskContext context;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json, &context, options);
  if (!status.ok()) return absl::InvalidArgumentError(std::string(status.message()));
  return context;
}

absl::StatusOr<v1::TaskContext> ReadTaskContextFile(const std::string& path) {
  auto json = util::ReadFile(path);
  if (!json.ok()) return json.status();
  auto context = ParseTaskContextJson(*json);
  if (!context.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("context file ", path, ": ", context.status().message()));
  }
  return context;
}

absl::StatusOr<std::vector<v1::RunReport>> ReadRunReportsJsonl(const std::string& path) {
  auto text = util::ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<v1::RunReport> reports;
  size_t line_no = 0;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    v1::RunReport report;
    auto status = google::protobuf::util::JsonStringToMessage(std::string(line), &report, options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", status.message().as_string()));
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace accelsel::client::cli
