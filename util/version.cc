// The compile definitions util/CMakeLists.txt sets on this file alone carry the version and the revision.
#include "util/version.h"

#include "absl/flags/usage_config.h"

namespace accelsel::util {

std::string_view Version() { return ACCELSEL_VERSION; }

std::string_view Revision() { return ACCELSEL_REVISION; }

std::string VersionLine(std::string_view program) {
  std::string line(program);
  return line.append(" ").append(Version()).append(" (git ").append(Revision()).append(")");
}

void SetFlagsVersion(std::string_view program) {
  absl::FlagsUsageConfig config;  // fields left empty keep absl's defaults
  config.version_string = [name = std::string(program)] { return VersionLine(name) + "\n"; };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace accelsel::util
