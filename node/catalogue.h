// The llama.cpp CPU strategy catalogue: weight format x KV-cache type x flash attention x threads x batch sizes,
// each a v1::Strategy with components, plus llama.cpp's own defaults as a named strategy; and the way back from
// a strategy (its components or its id) to the engine settings it stands for.
#ifndef ACCELSEL_NODE_CATALOGUE_H_
#define ACCELSEL_NODE_CATALOGUE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::node {

// The model file a strategy runs: <model>.<FORMAT>.gguf as node/make_models.py writes them.
enum class WeightFormat { kF16, kQ8_0, kQ4_0, kQ4_K_M };
// The KV cache's element type, for K and V together (see kv below).
enum class KvType { kF16, kQ8_0, kQ4_0 };
enum class FlashAttn { kOff, kOn, kAuto };

// What one strategy sets in llama.cpp. The defaults are llama.cpp's own (what a user who passes no option gets
// from llama-cli / llama-server), except the weights, which are the F16 file a user converts a model into.
struct EngineSettings {
  WeightFormat weights = WeightFormat::kF16;
  // type_k and type_v both. Splitting them would double the KV axis for little: llama.cpp refuses a quantised V
  // cache without flash attention, so K-only quantisation is the only quantised option without it, and it keeps
  // half the cache at f16.
  KvType kv = KvType::kF16;
  FlashAttn flash_attn = FlashAttn::kAuto;  // kAuto: llama.cpp decides (this CPU build enables it)
  int threads = 0;                          // n_threads and n_threads_batch; 0 = every online core
  int n_batch = 2048;                       // logical batch: most tokens per llama_decode call
  int n_ubatch = 512;                       // physical batch: most tokens per compute graph

  bool operator==(const EngineSettings&) const = default;
};

inline constexpr char kEngineName[] = "llama.cpp";
inline constexpr char kDefaultStrategyId[] = "llamacpp:default";

// "F16", "Q8_0", "Q4_0", "Q4_K_M": the file-name suffix and llama-quantize's name.
std::string WeightFormatName(WeightFormat format);
// "f16", "q8_0", "q4_0": llama.cpp's cache type names (-ctk/-ctv).
std::string KvTypeName(KvType type);

// OK, or InvalidArgument naming the field and the rule: a quantised KV cache needs flash attention on (llama.cpp
// refuses a quantised V cache without it); threads 0 to 256; 1 <= n_ubatch <= n_batch <= 65536.
absl::Status ValidateSettings(const EngineSettings& settings);

// The strategy of `settings`: id "llamacpp:<quant>:kv=<kv>:fa=<on|off|auto>:t<threads|all>:b<n_batch>/<n_ubatch>"
// (e.g. "llamacpp:q4_0:kv=q8_0:fa=on:t2:b2048/512"), or kDefaultStrategyId for DefaultSettings(); components
// engine=llama.cpp, quant, kv_cache, flash_attn, threads, batch=<n_batch>/<n_ubatch>. Weights below F16 and a KV
// cache below f16 change the model's outputs: those components are lossy.
v1::Strategy ToStrategy(const EngineSettings& settings);
std::string StrategyId(const EngineSettings& settings);

// Back from a strategy's components (the definition; the id is not read) or from an id. InvalidArgument naming the
// component and the rule for anything this engine cannot run (another engine, an unknown value, a missing or repeated
// component, settings ValidateSettings refuses).
absl::StatusOr<EngineSettings> SettingsFromStrategy(const v1::Strategy& strategy);
absl::StatusOr<EngineSettings> SettingsFromId(absl::string_view id);

// llama.cpp with no options (F16 file, f16 cache, flash attention auto, all cores, batch 2048/512).
EngineSettings DefaultSettings();

// Every catalogue strategy, the default included, sorted by id. The grid: 4 weight formats x {f16 cache with flash
// attention off, f16 with it on, q8_0 on, q4_0 on} x threads {1, 2} x batch {2048/512, 512/128} = 64, plus the
// default. Quantised caches appear only with flash attention on (see EngineSettings::kv).
std::vector<v1::Strategy> Catalogue();

// The catalogue strategies that can run on a host with `cores` online cores (threads <= cores).
std::vector<v1::Strategy> StrategiesForHost(int cores);

// True when any component of `strategy` is lossy.
bool IsLossy(const v1::Strategy& strategy);

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_CATALOGUE_H_
