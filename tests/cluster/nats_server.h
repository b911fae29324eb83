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

// A child process started with posix_spawn, killed with SIGKILL (by its pid) with the object; its stdout and
// stderr go to `log` (or /dev/null).
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Kill(); }

  bool Spawn(std::vector<std::string> args, const std::string& log = "/dev/null") {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    // Nothing else of this process's: an inherited descriptor (a build lock's, a listening socket) would outlive it
    // in the child.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    const int rc = posix_spawn(&pid_, args[0].c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = 0;
    return rc == 0;
  }

  // kill -9, and reaped.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  // Whether it still runs (reaped here when it has exited).
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return false;
    }
    return true;
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
};

// A nats-server with JetStream on 127.0.0.1, killed (by its pid) with the object. `extra` are more command-line
// options (TLS, users, a cluster's routes).
class NatsServer {
 public:
  static std::string Binary() {
    for (const char* p : {"/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"}) {
      if (access(p, X_OK) == 0) return p;
    }
    return "";
  }

  explicit NatsServer(const std::string& dir, std::vector<std::string> extra = {}, int port = 0)
      : dir_(dir), extra_(std::move(extra)), port_(port) {}

  // Starts it and waits until it accepts connections. Again after Kill: on the same port and store.
  bool Start() {
    if (port_ == 0) port_ = FreePort();
    if (port_ == 0) return false;
    std::vector<std::string> args = {Binary(), "-js",
                                     "-a",     "127.0.0.1",
                                     "-p",     absl::StrCat(port_),
                                     "-sd",    dir_ + "/jetstream",
                                     "-l",     dir_ + "/nats-server.log"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    if (!child_.Spawn(std::move(args))) return false;
    return WaitFor([this] { return Accepts(port_); }, absl::Seconds(20));
  }

  void Kill() { child_.Kill(); }

  int port() const { return port_; }
  std::string url() const { return absl::StrCat("nats://127.0.0.1:", port_); }

 private:
  const std::string dir_;
  const std::vector<std::string> extra_;
  int port_ = 0;
  Child child_;
};

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_CLUSTER_NATS_SERVER_H_
