// Runs the `accelsel` CLI in-process, as main() would, and keeps what it wrote: the helper the CLI tests share.
#ifndef ACCELSEL_TESTS_CLIENT_RUN_CLI_H_
#define ACCELSEL_TESTS_CLIENT_RUN_CLI_H_

#include <sstream>
#include <string>
#include <vector>

#include "client/cli.h"

namespace accelsel::client::cli {

// One CLI run: its exit code, stdout and stderr.
struct Result {
  int code;
  std::string out, err;
};

inline Result RunCommand(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace accelsel::client::cli

#endif  // ACCELSEL_TESTS_CLIENT_RUN_CLI_H_
