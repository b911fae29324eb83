// ChannelTarget: the user's server address, or list of replica addresses, as a gRPC target (client.h).
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/client.h"

namespace accelsel::client {
namespace {

// The URI schemes of gRPC's resolvers. A target starting with one of them (and a colon) is gRPC's to read.
constexpr std::array<absl::string_view, 7> kSchemes = {"dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock", "xds"};
// The resolvers that read a comma-separated list of addresses themselves.
constexpr std::array<absl::string_view, 2> kListSchemes = {"ipv4", "ipv6"};

constexpr char kRule[] =
    "give host:port, a list host:port,host:port,... of replicas, or one gRPC URI such as dns:///name:port";

enum class Family { kName, kIpv4, kIpv6 };

// One item of a list: the host without brackets, and the port as written.
struct HostPort {
  std::string host;
  std::string port;
  Family family = Family::kName;
};

// The scheme `text` starts with, if it is one of `schemes`; empty otherwise.
template <size_t N>
absl::string_view SchemeOf(absl::string_view text, const std::array<absl::string_view, N>& schemes) {
  for (absl::string_view scheme : schemes) {
    if (absl::StartsWithIgnoreCase(text, scheme) && text.size() > scheme.size() && text[scheme.size()] == ':') {
      return scheme;
    }
  }
  return {};
}

// What the caller passed: its name (a flag, a field) and its value, for the messages.
struct Source {
  absl::string_view name;
  absl::string_view addresses;
};

absl::Status Invalid(const Source& source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source.name, ": \"", source.addresses, "\": ", what, "; ", kRule));
}

absl::StatusOr<HostPort> ParseItem(const Source& source, absl::string_view item) {
  if (item.empty()) return Invalid(source, "an empty item");
  if (!SchemeOf(item, kSchemes).empty()) {
    return Invalid(source, absl::StrCat("a URI (", item, ") in a list of host:port items"));
  }
  HostPort out;
  absl::string_view rest;
  if (item.front() == '[') {
    const size_t close = item.find(']');
    if (close == absl::string_view::npos) return Invalid(source, absl::StrCat("\"", item, "\" lacks its ']'"));
    out.host = std::string(item.substr(1, close - 1));
    rest = item.substr(close + 1);
    in6_addr v6;
    if (inet_pton(AF_INET6, out.host.c_str(), &v6) != 1) {
      return Invalid(source, absl::StrCat("\"", out.host, "\" is not an IPv6 address"));
    }
    out.family = Family::kIpv6;
  } else {
    const size_t colon = item.rfind(':');
    if (colon == absl::string_view::npos) return Invalid(source, absl::StrCat("\"", item, "\" has no port"));
    out.host = std::string(item.substr(0, colon));
    rest = item.substr(colon);
    if (absl::StrContains(out.host, ':')) {
      return Invalid(source, absl::StrCat("\"", item, "\": an IPv6 address goes in brackets, [::1]:50051"));
    }
    in_addr v4;
    if (inet_pton(AF_INET, out.host.c_str(), &v4) == 1) out.family = Family::kIpv4;
  }
  if (out.host.empty()) return Invalid(source, absl::StrCat("\"", item, "\" has no host"));
  if (!absl::ConsumePrefix(&rest, ":") || rest.empty()) {
    return Invalid(source, absl::StrCat("\"", item, "\" has no port"));
  }
  uint32_t port = 0;
  if (!std::all_of(rest.begin(), rest.end(), absl::ascii_isdigit) || !absl::SimpleAtoi(rest, &port) || port == 0 ||
      port > 65535) {
    return Invalid(source, absl::StrCat("\"", item, "\": the port must be 1 to 65535"));
  }
  out.port = std::string(rest);
  return out;
}

// The numeric addresses of one item's host, by family, as gRPC's list form writes them.
struct Resolved {
  std::vector<std::string> ipv4;
  std::vector<std::string> ipv6;
};

Resolved Literal(const HostPort& item) {
  Resolved out;
  if (item.family == Family::kIpv6) {
    out.ipv6.push_back(absl::StrCat("[", item.host, "]:", item.port));
  } else {
    out.ipv4.push_back(absl::StrCat(item.host, ":", item.port));
  }
  return out;
}

absl::StatusOr<Resolved> Resolve(const Source& source, const HostPort& item) {
  if (item.family != Family::kName) return Literal(item);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address, not one per socket type
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(item.host.c_str(), item.port.c_str(), &hints, &found);
  if (rc != 0) {
    const std::string why = absl::StrCat(source.name, ": cannot resolve \"", item.host, "\" (", gai_strerror(rc), ")");
    return rc == EAI_AGAIN ? absl::UnavailableError(why) : absl::NotFoundError(why);
  }
  Resolved out;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (a->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      if (inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size()) == nullptr) continue;
      out.ipv6.push_back(absl::StrCat("[", text.data(), "]:", item.port));
    } else if (a->ai_family == AF_INET) {
      const auto* in4 = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      if (inet_ntop(AF_INET, &in4->sin_addr, text.data(), text.size()) == nullptr) continue;
      out.ipv4.push_back(absl::StrCat(text.data(), ":", item.port));
    }
  }
  freeaddrinfo(found);
  return out;
}

// gRPC's list form of `items`: "ipv4:a:p,b:p" when every item has an IPv4 address (the common case, and a name
// with both kinds counts once, not twice), else "ipv6:[a]:p,..." when every item has an IPv6 one.
absl::StatusOr<std::string> ListTarget(const Source& source, const std::vector<HostPort>& items) {
  const bool v4 = std::any_of(items.begin(), items.end(), [](const HostPort& i) { return i.family == Family::kIpv4; });
  const bool v6 = std::any_of(items.begin(), items.end(), [](const HostPort& i) { return i.family == Family::kIpv6; });
  if (v4 && v6) return Invalid(source, "IPv4 and IPv6 addresses in one list (gRPC's list holds one family)");
  std::vector<Resolved> resolved;
  for (const HostPort& item : items) {
    auto r = Resolve(source, item);
    if (!r.ok()) return r.status();
    resolved.push_back(*std::move(r));
  }
  const auto all_have = [&resolved](bool ipv4) {
    return std::all_of(resolved.begin(), resolved.end(),
                       [ipv4](const Resolved& r) { return !(ipv4 ? r.ipv4 : r.ipv6).empty(); });
  };
  bool ipv4 = true;
  if (!v6 && all_have(true)) {
    ipv4 = true;
  } else if (!v4 && all_have(false)) {
    ipv4 = false;
  } else {
    return Invalid(source, "some names have IPv4 addresses only, some IPv6 only (gRPC's list holds one family)");
  }
  std::vector<std::string> out;
  for (Resolved& r : resolved) {
    for (std::string& a : ipv4 ? r.ipv4 : r.ipv6) {
      // A replica named twice (a name and its address) is still one replica.
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
    }
  }
  return absl::StrCat(ipv4 ? "ipv4:" : "ipv6:", absl::StrJoin(out, ","));
}

}  // namespace

absl::StatusOr<std::string> ChannelTarget(absl::string_view addresses, absl::string_view name) {
  const Source source{name, addresses};
  const absl::string_view text = absl::StripAsciiWhitespace(addresses);
  if (text.empty()) return Invalid(source, "no address");
  if (absl::string_view scheme = SchemeOf(text, kSchemes); !scheme.empty()) {
    if (absl::StrContains(text, ',') && SchemeOf(text, kListSchemes).empty()) {
      return Invalid(source, absl::StrCat("a ", scheme, ": URI names one target, not a list"));
    }
    return std::string(text);
  }
  std::vector<HostPort> items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    auto parsed = ParseItem(source, absl::StripAsciiWhitespace(item));
    if (!parsed.ok()) return parsed.status();
    items.push_back(*std::move(parsed));
  }
  if (items.size() == 1) return std::string(text);
  return ListTarget(source, items);
}

void SetReplicaLoadBalancing(grpc::ChannelArguments* args) { args->SetLoadBalancingPolicyName("round_robin"); }

}  // namespace accelsel::client
