// Entry point of the `accelsel` CLI; everything else is in client/cli.cc so tests can run it in-process.
#include <iostream>
#include <string>
#include <vector>

#include "client/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return accelsel::client::cli::RunCli(args, std::cout, std::cerr);
}
