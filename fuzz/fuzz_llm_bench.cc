// libFuzzer target: the LLM-Inference-Bench import (datasets/llm_inference_bench.h). The importer reads a file, so each
// input is written to a per-process file under /dev/shm (or /tmp) first; descriptor tables come from data/descriptors.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "datasets/llm_inference_bench.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    const char* shm = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(shm) + "/accelsel-fuzz-llmbench-" + std::to_string(getpid()) + ".csv";
  }();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  accelsel::datasets::LlmBenchImportStats stats;
  auto runs = accelsel::datasets::LoadLlmInferenceBench(path, ACCELSEL_FUZZ_DESCRIPTORS_DIR, &stats);
  if (runs.ok()) {
    if (runs->size() != stats.runs) __builtin_trap();
    (void)accelsel::datasets::LlmBenchStrategies(*runs);
  }
  return 0;
}
