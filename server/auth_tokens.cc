// Token file parsing and the loopback test.
#include "server/auth_tokens.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/validate.h"
#include "util/file.h"

namespace accelsel::server {

absl::StatusOr<absl::flat_hash_map<std::string, TokenEntry>> ParseAuthTokens(const std::string& text) {
  absl::flat_hash_map<std::string, TokenEntry> out;
  const ValidationLimits limits;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (f.empty()) continue;
    if (f.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth tokens line ", line_no, ": want \"TOKEN ROLE NODE_ID\", got ", f.size(), " fields"));
    }
    if (f[0].size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat("auth tokens line ", line_no, ": token shorter than 16 chars"));
    }
    TokenEntry e;
    if (f[1] == "node") {
      e.role = Role::kNode;
    } else if (f[1] == "operator") {
      e.role = Role::kOperator;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("auth tokens line ", line_no,
                                                     ": role must be node or operator, got \"",
                                                     absl::CHexEscape(f[1].substr(0, 32)), "\""));
    }
    if (absl::Status st = ValidateId("node id", f[2], limits); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("auth tokens line ", line_no, ": ", st.message()));
    }
    e.node_id = std::string(f[2]);
    if (!out.emplace(std::string(f[0]), std::move(e)).second) {
      return absl::InvalidArgumentError(absl::StrCat("auth tokens line ", line_no, ": duplicate token"));
    }
  }
  if (out.empty()) return absl::InvalidArgumentError("auth tokens file holds no tokens");
  return out;
}

absl::StatusOr<absl::flat_hash_map<std::string, TokenEntry>> ReadAuthTokensFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot read --auth_tokens ", path, ": ", std::strerror(errno)));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "--auth_tokens %s is writable by %s (mode %04o): whoever can write it can make themselves an operator; "
        "chmod go-w it (e.g. 0600)",
        path, (st.st_mode & S_IWOTH) != 0 ? "everyone" : "its group", st.st_mode & 07777));
  }
  auto text = util::ReadFile(path);
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat("--auth_tokens: ", text.status().message()));
  auto tokens = ParseAuthTokens(*text);
  if (!tokens.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", tokens.status().message()));
  return tokens;
}

bool IsLoopbackAddress(const std::string& listen) {
  absl::string_view host = listen;
  if (const size_t port = host.rfind(':'); port != absl::string_view::npos) host = host.substr(0, port);
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) return false;
  if (host == "localhost") return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;  // ::ffff:127.x.y.z
  }
  return false;
}

}  // namespace accelsel::server
