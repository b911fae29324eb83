// An accelsel-server child process for --spawn-server: started on an empty temporary store with loopback
// listeners on port 0, its bound port read from the line it prints when ready, stopped by its PID and its folder
// removed at the end.
#ifndef ACCELSEL_SIM_SERVER_PROCESS_H_
#define ACCELSEL_SIM_SERVER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace accelsel::sim {

struct ServerProcessOptions {
  std::string binary;      // path of accelsel-server
  std::string tmp_parent;  // the temporary data folder is made under it
  std::string descriptors_dir;
  std::vector<std::string> extra_flags;  // e.g. "--retrain_interval=10s"
  // Content of an --auth_tokens file ("TOKEN ROLE NODE_ID" lines). Non-empty: written beside the store, readable
  // by its owner only, and passed to the server.
  std::string auth_tokens;
  absl::Duration start_timeout = absl::Seconds(60);
};

class ServerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const ServerProcessOptions& options);
  ~ServerProcess();  // Stop()

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // Resident set size of the server now, bytes (from /proc/PID/status); 0 when it cannot be read.
  uint64_t RssBytes() const;
  // SIGTERM, then SIGKILL if it has not exited within `grace`; removes the data folder. Idempotent.
  void Stop(absl::Duration grace = absl::Seconds(15));
  // The tail of the server's log (stdout and stderr), for error messages.
  std::string LogTail(size_t bytes = 2000) const;

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  std::string dir_;
  std::string log_path_;
  std::string address_;
};

// The flags the server binary accepts (its --helpfull output names them), to use newer flags only when present.
bool ServerHasFlag(const std::string& binary, const std::string& flag);

// Runs `argv` (argv[0] a path) to completion with its output on ours; its exit status, or -1 when killed.
absl::StatusOr<int> RunProcess(const std::vector<std::string>& argv);

// Folder of the running executable (/proc/self/exe), for finding accelsel-server beside accelsel-netsim.
std::string SelfDirectory();

}  // namespace accelsel::sim

#endif  // ACCELSEL_SIM_SERVER_PROCESS_H_
