// The build's identity, printed by every binary's --version and exported as the server's accelsel_build_info
// metric. Both parts are fixed when CMake configures the build tree: the version is project()'s in the top
// CMakeLists.txt, the revision the short git commit checked out then ("unknown" outside a git checkout, or what
// -DACCELSEL_REVISION says), so a commit made later shows only once cmake runs again.
#ifndef ACCELSEL_UTIL_VERSION_H_
#define ACCELSEL_UTIL_VERSION_H_

#include <string>
#include <string_view>

namespace accelsel::util {

std::string_view Version();   // e.g. "0.1.0"
std::string_view Revision();  // e.g. "abc1234", or "unknown"

// "<program> <version> (git <revision>)", without a newline: the whole output of --version.
std::string VersionLine(std::string_view program);

// For binaries on absl flags: makes their --version print VersionLine(program) and exit 0. Call before
// absl::ParseCommandLine.
void SetFlagsVersion(std::string_view program);

}  // namespace accelsel::util

#endif  // ACCELSEL_UTIL_VERSION_H_
