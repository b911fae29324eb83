// llama.cpp behind the Engine interface. The C API reports failure as null or a return code and logs the reason;
// the log callback keeps the first error line so a failed run carries it, and tells allocation failures (OOM) from
// the rest (CRASH).
#include "node/llama_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "llama.h"
#include "node/host.h"

namespace accelsel::node {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// llama.cpp's log: one process-wide callback. The first error line since the last take is what a failed run reports.
struct LogState {
  absl::Mutex mu;
  bool verbose ABSL_GUARDED_BY(mu) = false;
  std::string last_error ABSL_GUARDED_BY(mu);
};

LogState& Log() {
  static LogState* const kState = new LogState;
  return *kState;
}

void LogCallback(ggml_log_level level, const char* text, void* /*user_data*/) {
  LogState& log = Log();
  absl::MutexLock lock(&log.mu);
  // The first error since the last take names the cause; later ones are the callers giving up.
  if (level == GGML_LOG_LEVEL_ERROR && log.last_error.empty()) {
    log.last_error = std::string(absl::StripTrailingAsciiWhitespace(text));
  }
  if (log.verbose || level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

std::string TakeLastError() {
  LogState& log = Log();
  absl::MutexLock lock(&log.mu);
  std::string e = std::move(log.last_error);
  log.last_error.clear();
  return e;
}

ggml_type CacheType(KvType t) {
  switch (t) {
    case KvType::kF16: return GGML_TYPE_F16;
    case KvType::kQ8_0: return GGML_TYPE_Q8_0;
    case KvType::kQ4_0: return GGML_TYPE_Q4_0;
  }
  return GGML_TYPE_F16;
}

llama_flash_attn_type FlashAttnType(FlashAttn fa) {
  switch (fa) {
    case FlashAttn::kOff: return LLAMA_FLASH_ATTN_TYPE_DISABLED;
    case FlashAttn::kOn: return LLAMA_FLASH_ATTN_TYPE_ENABLED;
    case FlashAttn::kAuto: return LLAMA_FLASH_ATTN_TYPE_AUTO;
  }
  return LLAMA_FLASH_ATTN_TYPE_AUTO;
}

JobMetrics Failed(v1::RunStatus status, const std::string& what) {
  JobMetrics m;
  m.status = status;
  const std::string detail = TakeLastError();
  m.message = detail.empty() ? what : absl::StrCat(what, ": ", detail);
  return m;
}

// A batch of up to `capacity` tokens, each of one sequence; freed with the object.
class Batch {
 public:
  explicit Batch(int32_t capacity) : batch_(llama_batch_init(capacity, 0, 1)) {}
  ~Batch() { llama_batch_free(batch_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void Clear() { batch_.n_tokens = 0; }
  void Add(llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
    const int32_t i = batch_.n_tokens++;
    batch_.token[i] = token;
    batch_.pos[i] = pos;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = seq;
    batch_.logits[i] = logits ? 1 : 0;
  }
  const llama_batch& get() const { return batch_; }
  int32_t size() const { return batch_.n_tokens; }

 private:
  llama_batch batch_;
};

}  // namespace

LlamaEngine::LlamaEngine(bool verbose) {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(LogCallback, nullptr);
    llama_backend_init();
  });
  absl::MutexLock lock(&Log().mu);
  Log().verbose = verbose;
}

LlamaEngine::~LlamaEngine() {
  FreeContext();
  for (auto& [path, m] : models_) llama_model_free(m.model);
}

std::string LlamaEngine::Describe() const {
  return absl::StrCat("llama.cpp (C API, CPU): ", llama_print_system_info());
}

void LlamaEngine::FreeContext() {
  if (context_ != nullptr) llama_free(context_);
  context_ = nullptr;
  context_key_ = ContextKey{};
}

LlamaEngine::LoadedModel* LlamaEngine::Model(const std::string& path, std::string* error) {
  auto it = models_.find(path);
  if (it != models_.end()) return &it->second;
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = 0;
  TakeLastError();
  llama_model* model = llama_model_load_from_file(path.c_str(), params);
  if (model == nullptr) {
    const std::string detail = TakeLastError();
    *error = absl::StrCat("cannot load model ", path, detail.empty() ? "" : ": ", detail);
    return nullptr;
  }
  LoadedModel loaded;
  loaded.model = model;
  const llama_vocab* vocab = llama_model_get_vocab(model);
  for (llama_token t = 0; t < llama_vocab_n_tokens(vocab); ++t) {
    if (llama_vocab_is_eog(vocab, t)) loaded.eog_tokens.push_back(t);
  }
  WarmUp(model);
  return &models_.emplace(path, std::move(loaded)).first->second;
}

void LlamaEngine::WarmUp(llama_model* model) {
  llama_context_params params = llama_context_default_params();
  params.n_ctx = 256;
  params.n_batch = 8;
  params.n_ubatch = 8;
  params.n_threads = HostCores();
  params.n_threads_batch = HostCores();
  params.no_perf = true;
  llama_context* ctx = llama_init_from_model(model, params);
  if (ctx == nullptr) return;  // the job's own context will fail and say why
  llama_token tokens[8] = {3, 4, 5, 6, 7, 8, 9, 10};
  llama_decode(ctx, llama_batch_get_one(tokens, 8));
  llama_free(ctx);
  TakeLastError();
}

llama_context* LlamaEngine::Context(LoadedModel* model, const ContextKey& key, std::string* error,
                                    v1::RunStatus* status) {
  if (context_ != nullptr && context_key_ == key) {
    llama_memory_clear(llama_get_memory(context_), /*data=*/true);
    return context_;
  }
  FreeContext();
  llama_context_params params = llama_context_default_params();
  params.n_ctx = key.n_ctx;
  params.n_seq_max = key.n_seq;
  params.n_batch = static_cast<uint32_t>(key.settings.n_batch);
  params.n_ubatch = static_cast<uint32_t>(key.settings.n_ubatch);
  const int threads = key.settings.threads == 0 ? HostCores() : key.settings.threads;
  params.n_threads = threads;
  params.n_threads_batch = threads;
  params.flash_attn_type = FlashAttnType(key.settings.flash_attn);
  params.type_k = CacheType(key.settings.kv);
  params.type_v = CacheType(key.settings.kv);
  params.no_perf = true;
  TakeLastError();
  context_ = llama_init_from_model(model->model, params);
  if (context_ == nullptr) {
    const std::string detail = TakeLastError();
    *error = absl::StrCat("cannot create a context (n_ctx ", key.n_ctx, ", ", key.n_seq, " sequences)",
                          detail.empty() ? "" : ": ", detail);
    // ggml says "failed to allocate" / "unable to allocate" when a buffer does not fit in memory.
    *status = absl::StrContains(absl::AsciiStrToLower(detail), "alloc") ? v1::RUN_STATUS_OOM : v1::RUN_STATUS_CRASH;
    return nullptr;
  }
  context_key_ = key;
  return context_;
}

JobMetrics LlamaEngine::Run(const Job& job, const EngineSettings& settings, const std::string& model_path) {
  std::string error;
  LoadedModel* model = Model(model_path, &error);
  if (model == nullptr) return Failed(v1::RUN_STATUS_CRASH, error);

  const Clock::time_point start = Clock::now();
  const uint32_t n_seq = job.parallel;
  // llama.cpp pads n_ctx to a multiple of 256 and then splits it evenly over the sequences (rounding down): a
  // per-sequence size that is itself a multiple of 256 keeps every sequence's share at least prompt + output.
  const uint32_t per_seq = (job.prompt_tokens + job.output_tokens + 255) / 256 * 256;
  ContextKey key{model_path, settings, per_seq * n_seq, n_seq};
  v1::RunStatus status = v1::RUN_STATUS_CRASH;
  llama_context* ctx = Context(model, key, &error, &status);
  if (ctx == nullptr) return Failed(status, error);
  JobMetrics m;
  m.context_ms = MsSince(start);

  const llama_vocab* vocab = llama_model_get_vocab(model->model);
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  std::vector<llama_logit_bias> biases;
  for (llama_token t : model->eog_tokens) biases.push_back({t, -INFINITY});
  llama_sampler* sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(sampler,
                          llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(biases.size()), biases.data()));
  llama_sampler_chain_add(sampler, llama_sampler_init_dist(static_cast<uint32_t>(job.seed)));
  struct SamplerFree {
    llama_sampler* s;
    ~SamplerFree() { llama_sampler_free(s); }
  } sampler_guard{sampler};

  // Prompt: every sequence's tokens but the last, in n_batch chunks; then the last token of every sequence in one
  // batch, so all first tokens are sampled from the same decode's outputs.
  std::mt19937_64 rng(job.seed);
  std::uniform_int_distribution<llama_token> pick(3, std::max(3, n_vocab - 1));
  const int32_t chunk = settings.n_batch;
  Batch batch(std::max<int32_t>(chunk, static_cast<int32_t>(n_seq)));
  std::vector<llama_token> last(n_seq);
  for (llama_seq_id s = 0; s < static_cast<llama_seq_id>(n_seq); ++s) {
    for (uint32_t p = 0; p + 1 < job.prompt_tokens; ++p) {
      batch.Add(pick(rng), static_cast<llama_pos>(p), s, false);
      if (batch.size() == chunk) {
        if (const int32_t rc = llama_decode(ctx, batch.get()); rc != 0) {
          return Failed(v1::RUN_STATUS_CRASH, absl::StrCat("llama_decode (prompt) returned ", rc));
        }
        batch.Clear();
      }
    }
    last[s] = pick(rng);
  }
  if (batch.size() > 0) {
    if (const int32_t rc = llama_decode(ctx, batch.get()); rc != 0) {
      return Failed(v1::RUN_STATUS_CRASH, absl::StrCat("llama_decode (prompt) returned ", rc));
    }
  }
  uint64_t generated = 0;
  llama_pos pos = static_cast<llama_pos>(job.prompt_tokens) - 1;
  Clock::time_point first_tokens;
  for (uint32_t step = 0; step < job.output_tokens; ++step, ++pos) {
    batch.Clear();
    for (llama_seq_id s = 0; s < static_cast<llama_seq_id>(n_seq); ++s) batch.Add(last[s], pos, s, true);
    if (const int32_t rc = llama_decode(ctx, batch.get()); rc != 0) {
      return Failed(v1::RUN_STATUS_CRASH, absl::StrCat("llama_decode (token ", step, ") returned ", rc));
    }
    for (llama_seq_id s = 0; s < static_cast<llama_seq_id>(n_seq); ++s) {
      last[s] = llama_sampler_sample(sampler, ctx, s);
      ++generated;
    }
    if (step == 0) first_tokens = Clock::now();
  }
  const Clock::time_point end = Clock::now();
  m.status = v1::RUN_STATUS_OK;
  m.generated_tokens = generated;
  m.ttft_ms = std::chrono::duration<double, std::milli>(first_tokens - start).count();
  m.e2e_latency_ms = std::chrono::duration<double, std::milli>(end - start).count();
  m.tpot_ms = job.output_tokens > 1 ? (m.e2e_latency_ms - m.ttft_ms) / (job.output_tokens - 1) : 0;
  m.throughput_tokens_per_s = static_cast<double>(generated) / (m.e2e_latency_ms / 1000.0);
  m.peak_memory_gb = static_cast<double>(llama_model_size(model->model) + llama_state_get_size(ctx)) / 1e9;
  m.peak_memory_method = "llama_model_size + llama_state_get_size (weights, KV cache, outputs; no compute buffers)";
  return m;
}

}  // namespace accelsel::node
