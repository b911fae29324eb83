// Strategy <-> engine settings for llama.cpp on CPU.
#include "node/catalogue.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "util/status_macros.h"

namespace accelsel::node {
namespace {

constexpr WeightFormat kWeightFormats[] = {WeightFormat::kF16, WeightFormat::kQ8_0, WeightFormat::kQ4_0,
                                           WeightFormat::kQ4_K_M};
constexpr KvType kKvTypes[] = {KvType::kF16, KvType::kQ8_0, KvType::kQ4_0};

std::string QuantValue(WeightFormat f) { return absl::AsciiStrToLower(WeightFormatName(f)); }

std::string FlashAttnName(FlashAttn fa) {
  switch (fa) {
    case FlashAttn::kOff: return "off";
    case FlashAttn::kOn: return "on";
    case FlashAttn::kAuto: return "auto";
  }
  return "auto";
}

std::string ThreadsValue(int threads) { return threads == 0 ? "all" : absl::StrCat(threads); }
std::string BatchValue(const EngineSettings& s) { return absl::StrCat(s.n_batch, "/", s.n_ubatch); }

absl::StatusOr<WeightFormat> ParseQuant(absl::string_view v) {
  for (WeightFormat f : kWeightFormats) {
    if (v == QuantValue(f)) return f;
  }
  return absl::InvalidArgumentError(absl::StrCat("quant: \"", v, "\" is not one of f16, q8_0, q4_0, q4_k_m"));
}

absl::StatusOr<KvType> ParseKv(absl::string_view v) {
  for (KvType t : kKvTypes) {
    if (v == KvTypeName(t)) return t;
  }
  return absl::InvalidArgumentError(absl::StrCat("kv_cache: \"", v, "\" is not one of f16, q8_0, q4_0"));
}

absl::StatusOr<FlashAttn> ParseFlashAttn(absl::string_view v) {
  for (FlashAttn fa : {FlashAttn::kOff, FlashAttn::kOn, FlashAttn::kAuto}) {
    if (v == FlashAttnName(fa)) return fa;
  }
  return absl::InvalidArgumentError(absl::StrCat("flash_attn: \"", v, "\" is not one of on, off, auto"));
}

absl::StatusOr<int> ParseThreads(absl::string_view v) {
  if (v == "all") return 0;
  int n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < 1 || absl::StrCat(n) != v) {
    return absl::InvalidArgumentError(absl::StrCat("threads: \"", v, "\" is not \"all\" or a positive integer"));
  }
  return n;
}

absl::Status ParseBatch(absl::string_view v, EngineSettings* s) {
  std::pair<std::string, std::string> parts = absl::StrSplit(v, absl::MaxSplits('/', 1));
  if (!absl::SimpleAtoi(parts.first, &s->n_batch) || !absl::SimpleAtoi(parts.second, &s->n_ubatch) ||
      absl::StrCat(s->n_batch, "/", s->n_ubatch) != v) {
    return absl::InvalidArgumentError(absl::StrCat("batch: \"", v, "\" is not <n_batch>/<n_ubatch>"));
  }
  return absl::OkStatus();
}

void AddComponent(v1::Strategy* s, const std::string& method, const std::string& value, bool lossy) {
  v1::StrategyComponent* c = s->add_components();
  c->set_method(method);
  c->set_value(value);
  c->set_lossy(lossy);
}

std::string Description(const EngineSettings& s) {
  if (s == DefaultSettings()) {
    return "llama.cpp's defaults: F16 weights, f16 KV cache, flash attention auto, all cores, batch 2048/512";
  }
  return absl::StrCat("llama.cpp CPU: ", WeightFormatName(s.weights), " weights, ", KvTypeName(s.kv),
                      " KV cache, flash attention ", FlashAttnName(s.flash_attn), ", ", ThreadsValue(s.threads),
                      " threads, batch ", BatchValue(s));
}

}  // namespace

std::string WeightFormatName(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF16: return "F16";
    case WeightFormat::kQ8_0: return "Q8_0";
    case WeightFormat::kQ4_0: return "Q4_0";
    case WeightFormat::kQ4_K_M: return "Q4_K_M";
  }
  return "F16";
}

std::string KvTypeName(KvType type) {
  switch (type) {
    case KvType::kF16: return "f16";
    case KvType::kQ8_0: return "q8_0";
    case KvType::kQ4_0: return "q4_0";
  }
  return "f16";
}

EngineSettings DefaultSettings() { return EngineSettings{}; }

absl::Status ValidateSettings(const EngineSettings& s) {
  if (s.kv != KvType::kF16 && s.flash_attn != FlashAttn::kOn) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kv_cache: ", KvTypeName(s.kv), " needs flash_attn=on (llama.cpp refuses a quantised V cache without it)"));
  }
  if (s.threads < 0 || s.threads > 256) return absl::InvalidArgumentError("threads: must be 0 (all) to 256");
  if (s.n_ubatch < 1 || s.n_ubatch > s.n_batch || s.n_batch > 65536) {
    return absl::InvalidArgumentError("batch: needs 1 <= n_ubatch <= n_batch <= 65536");
  }
  return absl::OkStatus();
}

std::string StrategyId(const EngineSettings& s) {
  if (s == DefaultSettings()) return kDefaultStrategyId;
  return absl::StrCat("llamacpp:", QuantValue(s.weights), ":kv=", KvTypeName(s.kv), ":fa=", FlashAttnName(s.flash_attn),
                      ":t", ThreadsValue(s.threads), ":b", BatchValue(s));
}

v1::Strategy ToStrategy(const EngineSettings& s) {
  v1::Strategy strategy;
  strategy.set_id(StrategyId(s));
  AddComponent(&strategy, "engine", kEngineName, false);
  AddComponent(&strategy, "quant", QuantValue(s.weights), s.weights != WeightFormat::kF16);
  AddComponent(&strategy, "kv_cache", KvTypeName(s.kv), s.kv != KvType::kF16);
  AddComponent(&strategy, "flash_attn", FlashAttnName(s.flash_attn), false);
  AddComponent(&strategy, "threads", ThreadsValue(s.threads), false);
  AddComponent(&strategy, "batch", BatchValue(s), false);
  strategy.set_description(Description(s));
  return strategy;
}

absl::StatusOr<EngineSettings> SettingsFromStrategy(const v1::Strategy& strategy) {
  std::map<std::string, std::string> values;
  for (const v1::StrategyComponent& c : strategy.components()) {
    if (!values.emplace(c.method(), c.value()).second) {
      return absl::InvalidArgumentError(absl::StrCat(c.method(), ": component given twice"));
    }
  }
  for (const char* method : {"engine", "quant", "kv_cache", "flash_attn", "threads", "batch"}) {
    if (values.count(method) == 0) return absl::InvalidArgumentError(absl::StrCat(method, ": component missing"));
  }
  if (values.size() != 6) {
    return absl::InvalidArgumentError("components: only engine, quant, kv_cache, flash_attn, threads, batch");
  }
  if (values["engine"] != kEngineName) {
    return absl::InvalidArgumentError(absl::StrCat("engine: \"", values["engine"], "\" is not ", kEngineName));
  }
  EngineSettings s;
  ACCELSEL_ASSIGN_OR_RETURN(s.weights, ParseQuant(values["quant"]));
  ACCELSEL_ASSIGN_OR_RETURN(s.kv, ParseKv(values["kv_cache"]));
  ACCELSEL_ASSIGN_OR_RETURN(s.flash_attn, ParseFlashAttn(values["flash_attn"]));
  ACCELSEL_ASSIGN_OR_RETURN(s.threads, ParseThreads(values["threads"]));
  ACCELSEL_RETURN_IF_ERROR(ParseBatch(values["batch"], &s));
  ACCELSEL_RETURN_IF_ERROR(ValidateSettings(s));
  return s;
}

absl::StatusOr<EngineSettings> SettingsFromId(absl::string_view id) {
  if (id == kDefaultStrategyId) return DefaultSettings();
  const std::vector<absl::string_view> parts = absl::StrSplit(id, ':');
  const std::string shape = "llamacpp:<quant>:kv=<kv>:fa=<fa>:t<threads>:b<n_batch>/<n_ubatch>";
  if (parts.size() != 6 || parts[0] != "llamacpp") {
    return absl::InvalidArgumentError(absl::StrCat("id: \"", id, "\" is not ", shape));
  }
  absl::string_view kv = parts[2], fa = parts[3], threads = parts[4], batch = parts[5];
  if (!absl::ConsumePrefix(&kv, "kv=") || !absl::ConsumePrefix(&fa, "fa=") || !absl::ConsumePrefix(&threads, "t") ||
      !absl::ConsumePrefix(&batch, "b")) {
    return absl::InvalidArgumentError(absl::StrCat("id: \"", id, "\" is not ", shape));
  }
  EngineSettings s;
  ACCELSEL_ASSIGN_OR_RETURN(s.weights, ParseQuant(parts[1]));
  ACCELSEL_ASSIGN_OR_RETURN(s.kv, ParseKv(kv));
  ACCELSEL_ASSIGN_OR_RETURN(s.flash_attn, ParseFlashAttn(fa));
  ACCELSEL_ASSIGN_OR_RETURN(s.threads, ParseThreads(threads));
  ACCELSEL_RETURN_IF_ERROR(ParseBatch(batch, &s));
  ACCELSEL_RETURN_IF_ERROR(ValidateSettings(s));
  // One id per definition: an id that parses but is not the canonical spelling (e.g. the default's settings
  // written out) is refused, so two ids never name the same strategy.
  if (StrategyId(s) != id) {
    return absl::InvalidArgumentError(absl::StrCat("id: \"", id, "\" is spelt \"", StrategyId(s), "\" here"));
  }
  return s;
}

std::vector<v1::Strategy> Catalogue() {
  std::vector<v1::Strategy> out;
  const std::pair<KvType, FlashAttn> kCacheAttention[] = {{KvType::kF16, FlashAttn::kOff},
                                                          {KvType::kF16, FlashAttn::kOn},
                                                          {KvType::kQ8_0, FlashAttn::kOn},
                                                          {KvType::kQ4_0, FlashAttn::kOn}};
  const std::pair<int, int> kBatches[] = {{2048, 512}, {512, 128}};
  for (WeightFormat w : kWeightFormats) {
    for (const auto& [kv, fa] : kCacheAttention) {
      for (int threads : {1, 2}) {
        for (const auto& [n_batch, n_ubatch] : kBatches) {
          out.push_back(ToStrategy(EngineSettings{w, kv, fa, threads, n_batch, n_ubatch}));
        }
      }
    }
  }
  out.push_back(ToStrategy(DefaultSettings()));
  std::sort(out.begin(), out.end(), [](const v1::Strategy& a, const v1::Strategy& b) { return a.id() < b.id(); });
  return out;
}

std::vector<v1::Strategy> StrategiesForHost(int cores) {
  std::vector<v1::Strategy> out;
  for (v1::Strategy& s : Catalogue()) {
    auto settings = SettingsFromStrategy(s);
    if (settings.ok() && settings->threads <= cores) out.push_back(std::move(s));
  }
  return out;
}

bool IsLossy(const v1::Strategy& strategy) {
  return std::any_of(strategy.components().begin(), strategy.components().end(),
                     [](const v1::StrategyComponent& c) { return c.lossy(); });
}

}  // namespace accelsel::node
