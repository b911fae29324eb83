// accelsel-eval: the standalone form of `accelsel eval` (same code, see eval_main.h).
#include <iostream>
#include <string>
#include <vector>

#include "eval/eval_main.h"
#include "util/version.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--version") {
    std::cout << accelsel::util::VersionLine("accelsel-eval") << "\n";
    return 0;
  }
  return accelsel::eval::EvalMain(args, std::cout, std::cerr);
}
