// The real engine: llama.cpp's C API on the CPU, models loaded once per file and kept, one context per job shape
// and settings (recreated when they change, inside the job's measured time).
#ifndef ACCELSEL_NODE_LLAMA_ENGINE_H_
#define ACCELSEL_NODE_LLAMA_ENGINE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/engine.h"

struct llama_model;
struct llama_context;

namespace accelsel::node {

// Thread safety: none; one thread runs jobs (see Engine). Ownership: owns its models and its context, freed in the
// destructor.
class LlamaEngine : public Engine {
 public:
  // Initialises llama.cpp's backends once per process and routes its log: errors and warnings to stderr,
  // everything when `verbose`.
  explicit LlamaEngine(bool verbose = false);
  ~LlamaEngine() override;
  LlamaEngine(const LlamaEngine&) = delete;
  LlamaEngine& operator=(const LlamaEngine&) = delete;

  // Per job: context with n_ctx = (prompt + output rounded up to 256) x parallel (n_seq_max = parallel, a split
  // cache), the settings' cache types, flash attention, threads and batch sizes; a seeded random prompt of
  // prompt_tokens ids per sequence (ids 3 and up: no BOS/EOS/UNK), decoded in n_batch chunks with every sequence's last
  // prompt token in one final batch; then output_tokens sampled per sequence (end-of-generation tokens masked with a
  // -inf logit bias, then a seeded distribution sampler), each round of one token per sequence decoded together.
  // ttft_ms: job start to the first token of every sequence sampled; tpot_ms: the rest over output_tokens - 1.
  // peak_memory_gb: llama_model_size + llama_state_get_size (weights, KV cache and output buffer as the engine
  // sizes them; compute scratch buffers are not counted).
  JobMetrics Run(const Job& job, const EngineSettings& settings, const std::string& model_path) override;
  std::string Describe() const override;

 private:
  struct LoadedModel {
    llama_model* model = nullptr;
    std::vector<int32_t> eog_tokens;  // masked out when sampling, so every job produces exactly its tokens
  };
  // The context's identity: a job that needs the same one reuses it after clearing its memory.
  struct ContextKey {
    std::string model_path;
    EngineSettings settings;
    uint32_t n_ctx = 0, n_seq = 0;
    bool operator==(const ContextKey&) const = default;
  };

  // The model at `path`, loaded on first use; null and `*error` when it does not load.
  LoadedModel* Model(const std::string& path, std::string* error);
  // One small decode on a throwaway context right after loading: the weights are mapped from the file and read on
  // first use, so without it the first job on each model file would also pay for reading the file.
  static void WarmUp(llama_model* model);
  // A context for `key`: the current one (memory cleared) or a new one; null and `*error`/`*status` when it
  // cannot be made.
  llama_context* Context(LoadedModel* model, const ContextKey& key, std::string* error, v1::RunStatus* status);
  void FreeContext();

  std::map<std::string, LoadedModel> models_;
  llama_context* context_ = nullptr;
  ContextKey context_key_;
};

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_LLAMA_ENGINE_H_
