// Small generated tables for the simulator's tests, four engines each, with a known best engine per task and the
// others 1.25x to 2x worse; every row is measured twice (+2 % and -2 %), so a task's value is their geometric mean.
//  - by hardware and model (by_batch false): 3 hardware x 6 models at batch 1 = 18 tasks; on gpu-c the best
//    engine depends on the model size.
//  - by batch (by_batch true): 3 hardware x 3 models x batch 1, 4, 16, 64 = 36 tasks; on gpu-c the best engine
//    depends on the batch size, a column that reaches the server only as context.extra["batch"].
// delta is not measured for m-large on gpu-a.
#ifndef ACCELSEL_TESTS_SIM_KNOWN_BEST_TABLE_H_
#define ACCELSEL_TESTS_SIM_KNOWN_BEST_TABLE_H_

#include <cmath>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace accelsel::sim::testing {

inline std::vector<std::pair<std::string, double>> KnownModels(bool by_batch) {
  if (by_batch) return {{"m-small", 1}, {"m-mid", 4}, {"m-large", 16}};
  return {{"m-small", 1}, {"m-2", 2}, {"m-mid", 4}, {"m-8", 8}, {"m-large", 16}, {"m-32", 32}};
}

inline const char* KnownBest(const std::string& hardware, double model_size, int batch, bool by_batch) {
  if (hardware == "gpu-a") return "alpha";
  if (hardware == "gpu-b") return "gamma";
  if (by_batch) return batch >= 16 ? "beta" : "delta";
  return model_size >= 8 ? "beta" : "delta";
}

// True value of an engine for a task: latency in ms (the throughput column holds 1e6 / latency).
inline double KnownValue(const std::string& hardware, double model_size, int batch, const std::string& engine,
                         bool by_batch) {
  const double base = 10 * model_size * std::sqrt(static_cast<double>(batch));
  if (engine == KnownBest(hardware, model_size, batch, by_batch)) return base;
  const double slower = engine == "alpha" ? 1.25 : engine == "beta" ? 1.5 : engine == "gamma" ? 1.75 : 2.0;
  return base * slower;
}

// Writes the table to `path`: columns hardware,model,batch,engine,latency_ms,throughput.
inline void WriteKnownBestTable(const std::string& path, bool by_batch) {
  std::ofstream out(path);
  out.precision(17);
  out << "hardware,model,batch,engine,latency_ms,throughput\n";
  const std::vector<int> batches = by_batch ? std::vector<int>{1, 4, 16, 64} : std::vector<int>{1};
  for (const char* hw : {"gpu-a", "gpu-b", "gpu-c"}) {
    for (const auto& [model, size] : KnownModels(by_batch)) {
      for (int batch : batches) {
        for (const char* engine : {"alpha", "beta", "gamma", "delta"}) {
          if (std::string(hw) == "gpu-a" && model == "m-large" && std::string(engine) == "delta") continue;
          const double v = KnownValue(hw, size, batch, engine, by_batch);
          for (double f : {1.02, 1 / 1.02}) {
            out << hw << "," << model << "," << batch << "," << engine << "," << v * f << "," << 1e6 / (v * f) << "\n";
          }
        }
      }
    }
  }
}

}  // namespace accelsel::sim::testing

#endif  // ACCELSEL_TESTS_SIM_KNOWN_BEST_TABLE_H_
