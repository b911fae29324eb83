// Shared pieces of the node tests: a scratch folder and the made-up host they describe.
#ifndef ACCELSEL_TESTS_NODE_NODE_TEST_UTIL_H_
#define ACCELSEL_TESTS_NODE_NODE_TEST_UTIL_H_

#include <stdlib.h>

#include <string>

#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::node::testing {

// A new empty folder "<tag>-XXXXXX" under ACCELSEL_TEST_TMPDIR (or /tmp); "" when it cannot be made.
inline std::string TempDir(const std::string& tag) {
  const char* base = getenv("ACCELSEL_TEST_TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/" + tag + "-XXXXXX";
  return mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
}

// A fixed host, so tests do not depend on (or measure) the machine they run on.
inline v1::HardwareDescriptor TestHost() {
  v1::HardwareDescriptor h;
  h.set_accelerator("Test CPU (2 cores)");
  h.set_count(1);
  h.set_memory_gb(16);
  h.set_memory_bandwidth_gbps(20);
  h.set_interconnect("none");
  return h;
}

}  // namespace accelsel::node::testing

#endif  // ACCELSEL_TESTS_NODE_NODE_TEST_UTIL_H_
