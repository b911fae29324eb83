// The inference engine as the agent and the sweep see it: run one job with given settings and say what it
// measured. node/llama_engine.h is the real one; tests use a deterministic fake.
#ifndef ACCELSEL_NODE_ENGINE_H_
#define ACCELSEL_NODE_ENGINE_H_

#include <string>

#include "accelsel/v1/accelsel.pb.h"
#include "node/catalogue.h"
#include "node/jobs.h"

namespace accelsel::node {

// What one job measured. Times are wall clock from the start of the job, which includes creating the engine
// context the settings need (KV cache allocation and all), since a strategy change costs that; loading the model
// file is not included (it is loaded once per weight format and kept).
struct JobMetrics {
  v1::RunStatus status = v1::RUN_STATUS_UNSPECIFIED;
  std::string message;  // why, for a run that is not OK
  double ttft_ms = 0;   // until the first generated token of every sequence is sampled (prompt processing)
  double tpot_ms = 0;   // per generated token after the first, per sequence; 0 when output_tokens is 1
  double e2e_latency_ms = 0;
  double throughput_tokens_per_s = 0;  // generated tokens (all sequences) / e2e
  double peak_memory_gb = 0;
  std::string peak_memory_method;  // how peak_memory_gb was measured, for the records
  double context_ms = 0;           // of e2e: creating the context
  uint64_t generated_tokens = 0;   // all sequences; output_tokens x parallel when OK
};

// Thread safety: implementations run one job at a time; callers do not share an Engine between threads.
class Engine {
 public:
  virtual ~Engine() = default;
  // Runs `job` with `settings` on the model file `model_path` (the job's model in settings.weights' format).
  // Never throws or aborts for a bad model or setting: a file that does not load, a context that cannot be made
  // or a failed decode comes back as a non-OK status with a message.
  virtual JobMetrics Run(const Job& job, const EngineSettings& settings, const std::string& model_path) = 0;
  // "llama.cpp 80fb11a (CPU)", for the records.
  virtual std::string Describe() const = 0;
};

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_ENGINE_H_
