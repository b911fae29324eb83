// Starting and stopping the accelsel-server child of --spawn-server; see server_process.h.
#include "sim/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "util/file.h"

namespace accelsel::sim {
namespace {

// The file's text, or "" when it cannot be read (a log not written yet, a /proc entry of a process gone).
std::string ReadWhole(const std::string& path) { return util::ReadFile(path).value_or(""); }

// fork + exec of `argv` with stdout and stderr into `out_fd`; the child dies with its parent. It gets its own process
// group, so that a Ctrl-C at the terminal reaches netsim only, which then stops the child itself.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int out_fd) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

std::string SelfDirectory() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : self.parent_path().string();
}

absl::StatusOr<int> RunProcess(const std::vector<std::string>& argv) {
  auto pid = Spawn(argv, STDERR_FILENO);
  if (!pid.ok()) return pid.status();
  int status = 0;
  if (waitpid(*pid, &status, 0) != *pid) return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool ServerHasFlag(const std::string& binary, const std::string& flag) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  auto pid = Spawn({binary, "--helpfull"}, fds[1]);
  close(fds[1]);
  std::string text;
  if (pid.ok()) {
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    int status = 0;
    waitpid(*pid, &status, 0);
  }
  close(fds[0]);
  return absl::StrContains(text, absl::StrCat("--", flag, " (")) ||
         absl::StrContains(text, absl::StrCat("-", flag, " ("));
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(const ServerProcessOptions& options) {
  if (access(options.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("server binary ", options.binary, " is not executable"));
  }
  std::string templ = (std::filesystem::path(options.tmp_parent) / "accelsel-netsim-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp under ", options.tmp_parent, ": ", std::strerror(errno)));
  }
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->dir_ = templ;
  p->log_path_ = templ + "/server.log";
  const int log_fd = open(p->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("open ", p->log_path_, ": ", std::strerror(errno)));
  std::vector<std::string> argv = {options.binary,
                                   "--listen=127.0.0.1:0",
                                   "--metrics_listen=",
                                   absl::StrCat("--data_dir=", templ, "/data"),
                                   absl::StrCat("--descriptors_dir=", options.descriptors_dir),
                                   "--shutdown_grace=2s"};
  argv.insert(argv.end(), options.extra_flags.begin(), options.extra_flags.end());
  if (!options.auth_tokens.empty()) {
    const std::string path = templ + "/tokens";
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const bool written = fd >= 0 && write(fd, options.auth_tokens.data(), options.auth_tokens.size()) ==
                                        static_cast<ssize_t>(options.auth_tokens.size());
    if (fd >= 0) close(fd);
    if (!written) {
      close(log_fd);
      return absl::InternalError(absl::StrCat("writing ", path, ": ", std::strerror(errno)));
    }
    argv.push_back(absl::StrCat("--auth_tokens=", path));
  }
  auto pid = Spawn(argv, log_fd);
  close(log_fd);
  if (!pid.ok()) return pid.status();
  p->pid_ = *pid;
  // main.cc prints "accelsel-server listening on HOST:PORT (gRPC), ..." once it serves.
  const absl::Time deadline = absl::Now() + options.start_timeout;
  while (absl::Now() < deadline) {
    const std::string log = ReadWhole(p->log_path_);
    const size_t at = log.find("listening on ");
    const size_t end = at == std::string::npos ? at : log.find(" (gRPC)", at);
    if (end != std::string::npos) {
      p->address_ = log.substr(at + 13, end - at - 13);
      return p;
    }
    int status = 0;
    if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      return absl::InternalError(absl::StrCat("accelsel-server exited before serving: ", p->LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("accelsel-server did not report its port within ",
                                                  absl::FormatDuration(options.start_timeout), ": ", p->LogTail()));
}

ServerProcess::~ServerProcess() { Stop(); }

uint64_t ServerProcess::RssBytes() const {
  if (pid_ <= 0) return 0;
  const std::string status = ReadWhole(absl::StrCat("/proc/", pid_, "/status"));
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (!absl::ConsumePrefix(&line, "VmRSS:")) continue;
    uint64_t kb = 0;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (!parts.empty() && absl::SimpleAtoi(parts[0], &kb)) return kb * 1024;
  }
  return 0;
}

std::string ServerProcess::LogTail(size_t bytes) const {
  const std::string log = ReadWhole(log_path_);
  return log.size() > bytes ? log.substr(log.size() - bytes) : log;
}

void ServerProcess::Stop(absl::Duration grace) {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + grace;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

}  // namespace accelsel::sim
