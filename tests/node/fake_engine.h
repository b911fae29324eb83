// A deterministic stand-in for llama.cpp: latencies computed from the settings and the job, so tests know which
// strategy is fastest and what a run measured; models named in fail_models fail to load.
#ifndef ACCELSEL_TESTS_NODE_FAKE_ENGINE_H_
#define ACCELSEL_TESTS_NODE_FAKE_ENGINE_H_

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "node/engine.h"

namespace accelsel::node::testing {

class FakeEngine : public Engine {
 public:
  struct Call {
    std::string job_id;
    EngineSettings settings;
    std::string model_path;
  };

  // Per generated token, ms: lower for smaller weights, slower on one thread, a little slower with a quantised
  // cache; prompt tokens cost a tenth of that each.
  static double TokenMs(const EngineSettings& s) {
    double ms = 1.0;
    switch (s.weights) {
      case WeightFormat::kF16: ms = 1.0; break;
      case WeightFormat::kQ8_0: ms = 0.6; break;
      case WeightFormat::kQ4_0: ms = 0.4; break;
      case WeightFormat::kQ4_K_M: ms = 0.45; break;
    }
    if (s.threads == 1) ms *= 1.8;
    if (s.kv != KvType::kF16) ms *= 1.05;
    if (s.flash_attn == FlashAttn::kOff) ms *= 1.1;
    return ms;
  }

  JobMetrics Run(const Job& job, const EngineSettings& settings, const std::string& model_path) override {
    calls.push_back({job.id, settings, model_path});
    JobMetrics m;
    for (const std::string& bad : fail_models) {
      if (job.model == bad) {
        m.status = v1::RUN_STATUS_CRASH;
        m.message = "failed to load " + model_path;
        return m;
      }
    }
    const double token_ms = TokenMs(settings);
    m.status = v1::RUN_STATUS_OK;
    m.context_ms = 1;
    m.ttft_ms = m.context_ms + 0.1 * token_ms * job.prompt_tokens * job.parallel + token_ms;
    m.tpot_ms = token_ms * job.parallel;
    m.e2e_latency_ms = m.ttft_ms + m.tpot_ms * (job.output_tokens - 1);
    m.generated_tokens = uint64_t{job.output_tokens} * job.parallel;
    m.throughput_tokens_per_s = m.generated_tokens / (m.e2e_latency_ms / 1000.0);
    m.peak_memory_gb = 0.1;
    m.peak_memory_method = "fake";
    return m;
  }

  std::string Describe() const override { return "fake engine"; }

  std::set<std::string> fail_models;
  std::vector<Call> calls;
};

}  // namespace accelsel::node::testing

#endif  // ACCELSEL_TESTS_NODE_FAKE_ENGINE_H_
