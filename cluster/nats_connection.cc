// The NATS connection of cluster mode (cluster/nats_connection.h).
#include "cluster/nats_connection.h"

#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "util/log.h"

namespace accelsel::cluster {
namespace {

// The file's contents, or an error naming the flag that gave it: the library reads some files only when it
// connects, and then reports a missing one as a connection failure.
absl::StatusOr<std::string> ReadFlagFile(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text;
  if (in) text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in || in.bad()) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is empty"));
  return text;
}

// Applies the authentication and TLS options; errors name their flag.
absl::Status SetSecurity(const RunStreamOptions& o, natsOptions* opts) {
  auto fail = [](const char* flag, natsStatus s) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", NatsError(s)));
  };
  if (!o.creds_file.empty()) {
    auto text = ReadFlagFile("--nats_creds", o.creds_file);
    if (!text.ok()) return text.status();
    if (text->find("NATS USER JWT") == std::string::npos || text->find("NKEY SEED") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--nats_creds: ", o.creds_file,
                                                     " is not a NATS credentials file (a user JWT and an nkey seed)"));
    }
    if (natsStatus s = natsOptions_SetUserCredentialsFromFiles(opts, o.creds_file.c_str(), nullptr); s != NATS_OK) {
      return fail("--nats_creds", s);
    }
  }
  if (o.user.empty() != o.password.empty()) {
    return absl::InvalidArgumentError("--nats_user and --nats_password go together");
  }
  if (!o.user.empty()) {
    if (natsStatus s = natsOptions_SetUserInfo(opts, o.user.c_str(), o.password.c_str()); s != NATS_OK) {
      return fail("--nats_user", s);
    }
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--nats_tls_cert and --nats_tls_key go together");
  }
  if (!o.tls_ca_file.empty()) {
    if (auto text = ReadFlagFile("--nats_tls_ca", o.tls_ca_file); !text.ok()) return text.status();
    if (natsStatus s = natsOptions_LoadCATrustedCertificates(opts, o.tls_ca_file.c_str()); s != NATS_OK) {
      return fail("--nats_tls_ca", s);
    }
  }
  if (!o.tls_cert_file.empty()) {
    if (auto text = ReadFlagFile("--nats_tls_cert", o.tls_cert_file); !text.ok()) return text.status();
    if (auto text = ReadFlagFile("--nats_tls_key", o.tls_key_file); !text.ok()) return text.status();
    if (natsStatus s = natsOptions_LoadCertificatesChain(opts, o.tls_cert_file.c_str(), o.tls_key_file.c_str());
        s != NATS_OK) {
      return fail("--nats_tls_cert/--nats_tls_key", s);
    }
  }
  if (!o.tls_ca_file.empty() || !o.tls_cert_file.empty()) {
    if (natsStatus s = natsOptions_SetSecure(opts, true); s != NATS_OK) return fail("--nats_tls_ca", s);
  }
  return absl::OkStatus();
}

// A connection's name for its log lines, kept for the life of the process: the library may call a connection's
// callbacks after its owner is gone (a close left to its own thread). Few distinct names exist.
const char* InternName(const char* name) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* names = new std::set<std::string>();
  absl::MutexLock lock(&mu);
  return names->insert(name).first->c_str();
}

// The connection's state changes, for the operator: reports are refused while it is not connected.
void LogConnectionEvent(natsConnection* nc, const char* event, void* name, bool warn) {
  char url[256] = "";
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  const log::Level level = warn ? log::Level::kWarn : log::Level::kInfo;
  if (!log::Enabled(level)) return;
  log::Write(level, event, {{"connection", static_cast<const char*>(name)}, {"url", static_cast<const char*>(url)}});
}
void OnDisconnected(natsConnection* nc, void* name) { LogConnectionEvent(nc, "cluster_nats_disconnected", name, true); }
void OnReconnected(natsConnection* nc, void* name) { LogConnectionEvent(nc, "cluster_nats_reconnected", name, false); }
void OnClosed(natsConnection* nc, void* name) { LogConnectionEvent(nc, "cluster_nats_closed", name, true); }

// Every write to the server fails after this long instead of blocking without bound (the library's default, on a
// blocking socket): a publish, a subscription's teardown or a close waits at most this long on a server that stopped
// reading, with the connection's lock held.
constexpr int64_t kWriteDeadlineMs = 10'000;

}  // namespace

std::string NatsError(natsStatus s) {
  const char* last = nats_GetLastError(nullptr);
  return (last != nullptr && *last != '\0') ? std::string(last) : std::string(natsStatus_GetText(s));
}

absl::StatusOr<natsConnection*> ConnectNats(const RunStreamOptions& options, const char* name) {
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return absl::InternalError("cannot create NATS options");
  std::unique_ptr<natsOptions, decltype(&natsOptions_Destroy)> owned(opts, &natsOptions_Destroy);
  std::vector<const char*> urls;
  for (const std::string& s : options.servers) urls.push_back(s.c_str());
  natsStatus s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  // A replica outlives NATS outages: it keeps reconnecting, and reports are refused meanwhile.
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, Millis(options.connect_timeout));
  if (s == NATS_OK) s = natsOptions_SetWriteDeadline(opts, kWriteDeadlineMs);
  if (s == NATS_OK) s = natsOptions_SetName(opts, name);
  void* const closure = const_cast<char*>(InternName(name));
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, &OnDisconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &OnReconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &OnClosed, closure);
  if (s != NATS_OK) return absl::InvalidArgumentError(absl::StrCat("--nats: ", NatsError(s)));
  if (absl::Status st = SetSecurity(options, opts); !st.ok()) return st;
  natsConnection* nc = nullptr;
  s = natsConnection_Connect(&nc, opts);
  if (s != NATS_OK) {
    std::string error = NatsError(s);
    // A TLS failure without a CA of our own is most often a server certificate from a private CA.
    if (options.tls_ca_file.empty() &&
        (s == NATS_SSL_ERROR || absl::StrContains(error, "SSL") || absl::StrContains(error, "certificate"))) {
      absl::StrAppend(&error, " (a server certificate from a private CA needs --nats_tls_ca)");
    }
    return absl::UnavailableError(absl::StrCat("cannot connect to NATS (--nats): ", error));
  }
  return nc;
}

void CloseNats(natsConnection* nc, const char* name, absl::Duration bound) {
  if (nc == nullptr) return;
  auto closed = std::make_shared<absl::Notification>();
  const auto end_connection = [nc] {
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  };
  std::thread closer;
  try {
    closer = std::thread([end_connection, closed] {
      end_connection();
      closed->Notify();
    });
  } catch (const std::system_error&) {  // no thread to be had: closed here, unbounded
    end_connection();
    return;
  }
  if (closed->WaitForNotificationWithTimeout(bound)) {
    closer.join();
    return;
  }
  closer.detach();
  log::Error("cluster_nats_close_stuck",
             {{"connection", std::string(name)}, {"waited_s", absl::ToDoubleSeconds(bound)}});
}

}  // namespace accelsel::cluster
