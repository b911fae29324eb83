// accelsel-microbench's main: Google Benchmark's BENCHMARK_MAIN, plus the --version every accelsel binary answers
// (Google Benchmark's own flag parser would reject it as unrecognized).
#include <cstring>
#include <iostream>

#include "benchmark/benchmark.h"
#include "util/version.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--version") == 0) {
      std::cout << accelsel::util::VersionLine("accelsel-microbench") << "\n";
      return 0;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
