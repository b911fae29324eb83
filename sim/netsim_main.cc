// accelsel-netsim: the closed-loop network simulator (docs/SIMULATION.md).
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "sim/driver.h"
#include "sim/netsim.h"

namespace {

// Ctrl-C or SIGTERM: stop after the jobs in flight, so that the spawned server is stopped and its folder removed.
void OnStopSignal(int) { accelsel::sim::StopRuns(); }

}  // namespace

int main(int argc, char** argv) {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // As in the server: Debian's Abseil is built without NDEBUG; the lock graph would cost every call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv + 1, argv + argc);
  return accelsel::sim::NetsimMain(args, std::cout, std::cerr);
}
