// accelsel-netsim: the closed-loop network simulator (docs/SIMULATION.md).
#include <iostream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "sim/netsim.h"

int main(int argc, char** argv) {
  // As in the server: Debian's Abseil is built without NDEBUG; the lock graph would cost every call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv + 1, argv + argc);
  return accelsel::sim::NetsimMain(args, std::cout, std::cerr);
}
