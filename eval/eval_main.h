// `accelsel eval`: offline evaluation of every selector on public data, without a server. Shared by the
// `accelsel` CLI (client/) and the standalone `accelsel-eval` binary.
#ifndef ACCELSEL_EVAL_EVAL_MAIN_H_
#define ACCELSEL_EVAL_EVAL_MAIN_H_

#include <ostream>
#include <string>
#include <vector>

namespace accelsel::eval {

// `args` are the arguments after "eval" (no program name). Returns the process exit code: 0 on success, 2 on a
// usage error, 1 when the data cannot be read or evaluated.
int EvalMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Usage text of `accelsel eval`.
const char* EvalUsage();

}  // namespace accelsel::eval

#endif  // ACCELSEL_EVAL_EVAL_MAIN_H_
