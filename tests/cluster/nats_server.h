// Test helpers of cluster mode: a real nats-server child process (JetStream on 127.0.0.1, optionally clustered),
// free ports, bounded polling.
#ifndef ACCELSEL_TESTS_CLUSTER_NATS_SERVER_H_
#define ACCELSEL_TESTS_CLUSTER_NATS_SERVER_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace accelsel::testing {

// Polls `done` every 20 ms until it holds or `bound` passes.
inline bool WaitFor(const std::function<bool()>& done, absl::Duration bound) {
  const absl::Time end = absl::Now() + bound;
  while (!done()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

inline bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A nats-server with JetStream on 127.0.0.1, killed (by its pid) with the object. `extra` are more command-line
// options (TLS, users).
class NatsServer {
 public:
  static std::string Binary() {
    for (const char* p : {"/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"}) {
      if (access(p, X_OK) == 0) return p;
    }
    return "";
  }

  explicit NatsServer(const std::string& dir, std::vector<std::string> extra = {})
      : dir_(dir), extra_(std::move(extra)) {}
  ~NatsServer() { Kill(); }

  // Starts it and waits until it accepts connections. Again after Kill: on the same port and store.
  bool Start() {
    if (port_ == 0) port_ = FreePort();
    if (port_ == 0) return false;
    const std::string port = absl::StrCat(port_);
    const std::string store = dir_ + "/jetstream";
    const std::string log = dir_ + "/nats-server.log";
    const std::string binary = Binary();
    std::vector<std::string> args = {binary, "-js", "-a", "127.0.0.1", "-p", port, "-sd", store, "-l", log};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = 0;
      return false;
    }
    return WaitFor([this] { return Accepts(port_); }, absl::Seconds(20));
  }

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  std::string url() const { return absl::StrCat("nats://127.0.0.1:", port_); }

 private:
  const std::string dir_;
  const std::vector<std::string> extra_;
  pid_t pid_ = 0;
  int port_ = 0;
};

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_CLUSTER_NATS_SERVER_H_
