// Feature encoding; see features.h for the layout and why each block exists.
#include "model/features.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace accelsel::model {
namespace {

// Debian's Abseil has its own string_view type (not std::string_view).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// 0 means "not given" in the plain records; a feature that is not given must look missing to the learners.
double Known(double v) { return v > 0 && std::isfinite(v) ? v : kMissing; }
float LogOrNaN(double v) { return IsMissing(v) || v <= 0 ? kNaN : static_cast<float>(std::log(v)); }
float SignedLog(double v) {
  if (IsMissing(v)) return kNaN;
  return static_cast<float>(v >= 0 ? std::log1p(v) : -std::log1p(-v));
}

// Key of a token in a ContextVocabulary: the field's hash seed and the lower-cased token.
std::string VocabularyKey(uint64_t seed, std::string_view token) {
  return std::to_string(seed) + ":" + absl::AsciiStrToLower(AV(token));
}

constexpr size_t kNoValue = static_cast<size_t>(-1);

// Appends `buckets` zeroed slots for a hashed categorical and returns where they start; an empty value (not
// reported) fills them with NaN instead and returns kNoValue.
size_t AppendBuckets(std::string_view value, int buckets, std::vector<float>* out) {
  const size_t base = out->size();
  out->resize(base + buckets, value.empty() ? kNaN : 0.0f);
  return value.empty() ? kNoValue : base;
}

// `vocabulary` (may be null = keep all): a value outside it sets no bucket (see EncodeContext).
void OneHotHashed(std::string_view value, int buckets, uint64_t seed, const ContextVocabulary* vocabulary,
                  std::vector<float>* out) {
  const size_t base = AppendBuckets(value, buckets, out);
  if (base == kNoValue) return;
  if (vocabulary != nullptr && !vocabulary->count(VocabularyKey(seed, value))) return;
  (*out)[base + StableHash(absl::AsciiStrToLower(AV(value)), seed) % buckets] = 1.0f;
}

// Tokens of a name, lower-cased, in order.
std::vector<std::string> NameTokens(std::string_view value) {
  std::vector<std::string> tokens;
  std::string token;
  for (char c : value) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      token.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    } else if (!token.empty()) {
      tokens.push_back(std::move(token));
      token.clear();
    }
  }
  if (!token.empty()) tokens.push_back(std::move(token));
  return tokens;
}

// Bag of name tokens ("Nvidia H100 GPU" -> nvidia, h100, gpu): an unseen name still shares tokens (vendor,
// family, size) with names seen in training, where a whole-name hash would land in an unrelated bucket.
// `vocabulary` (may be null = keep all): tokens outside it set no bucket (see EncodeContext).
void TokensHashed(std::string_view value, int buckets, uint64_t seed, const ContextVocabulary* vocabulary,
                  std::vector<float>* out) {
  const size_t base = AppendBuckets(value, buckets, out);
  if (base == kNoValue) return;
  for (const std::string& token : NameTokens(value)) {
    if (vocabulary != nullptr && !vocabulary->count(VocabularyKey(seed, token))) continue;
    (*out)[base + StableHash(token, seed) % buckets] = 1.0f;
  }
}

}  // namespace

double BytesPerParameter(std::string_view dtype) {
  const std::string d = absl::AsciiStrToLower(AV(dtype));
  if (d.empty()) return 2.0;
  if (d.find("fp32") != std::string::npos || d.find("float32") != std::string::npos) return 4.0;
  if (d.find("int4") != std::string::npos || d.find("awq") != std::string::npos ||
      d.find("gptq") != std::string::npos || d.find("q4") != std::string::npos || d.find("fp4") != std::string::npos) {
    return 0.5;
  }
  if (d.find("fp8") != std::string::npos || d.find("int8") != std::string::npos || d.find("q8") != std::string::npos) {
    return 1.0;
  }
  return 2.0;
}

std::vector<std::pair<std::string, std::string>> ComponentsFromId(std::string_view id) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view tok : absl::StrSplit(AV(id), absl::ByAnyChar(",;+| /&"), absl::SkipWhitespace())) {
    tok = absl::StripAsciiWhitespace(tok);
    if (tok.empty()) continue;
    const size_t eq = tok.find_first_of("=:");
    if (eq != absl::string_view::npos) {
      out.emplace_back(absl::AsciiStrToLower(tok.substr(0, eq)), absl::AsciiStrToLower(tok.substr(eq + 1)));
      continue;
    }
    // "tp2" -> ("tp", "2"): a short alphabetic key followed by a number.
    size_t split = 0;
    while (split < tok.size() && std::isalpha(static_cast<unsigned char>(tok[split]))) ++split;
    double v = 0;
    if (split > 0 && split <= 4 && split < tok.size() && ParseNumber(SV(tok.substr(split)), &v)) {
      out.emplace_back(absl::AsciiStrToLower(tok.substr(0, split)), std::string(tok.substr(split)));
      continue;
    }
    out.emplace_back("tag", absl::AsciiStrToLower(tok));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> StrategyComponents(const Strategy& s) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!s.components.empty()) {
    for (const auto& [k, v] : s.components) {
      out.emplace_back(absl::AsciiStrToLower(k), absl::AsciiStrToLower(v));
    }
  } else {
    out = ComponentsFromId(s.id);
  }
  out.emplace_back("id", absl::AsciiStrToLower(s.id));
  return out;
}

Roofline ComputeRoofline(const TaskContext& c) {
  Roofline r;
  const auto& m = c.model;
  const auto& h = c.hardware;
  const auto& w = c.workload;
  const double params_b = Known(m.parameters_b);
  const double count = h.count > 0 ? h.count : 1.0;
  const double batch = w.batch_size > 0 ? w.batch_size : 1.0;
  const double prompt = Known(w.prompt_tokens);
  const double output = Known(w.output_tokens);
  if (!IsMissing(params_b)) r.weight_gb = params_b * BytesPerParameter(m.weight_dtype);
  if (m.layers > 0 && m.hidden_size > 0 && m.attention_heads > 0 && !IsMissing(prompt)) {
    const double kv_heads = m.kv_heads > 0 ? m.kv_heads : m.attention_heads;
    const double head_dim = static_cast<double>(m.hidden_size) / m.attention_heads;
    const double kv_bytes_per_token = 2.0 * m.layers * kv_heads * head_dim * 2.0;  // K and V, 16-bit cache
    const double len = prompt + (IsMissing(output) ? 0 : output);
    r.kv_gb = batch * len * kv_bytes_per_token / 1e9;
  }
  if (!IsMissing(params_b)) {
    double active_b = params_b;
    // Mixture of experts: attention and embeddings are always active (about a third of the weights), the expert
    // FFNs only in the active/total share.
    if (m.experts > 1 && m.active_experts > 0) {
      active_b = params_b * (1.0 / 3.0 + 2.0 / 3.0 * std::min(1.0, double(m.active_experts) / m.experts));
    }
    r.flops_per_token = 2.0 * active_b * 1e9;
  }
  const double tflops = Known(h.peak_tflops);
  const double bw = Known(h.memory_bandwidth_gbps);
  const double mem = Known(h.memory_gb);
  if (!IsMissing(r.flops_per_token) && !IsMissing(tflops)) {
    r.compute_s_per_token = r.flops_per_token / (count * tflops * 1e12);
  }
  if (!IsMissing(r.weight_gb) && !IsMissing(bw)) {
    r.memory_s_per_step = (r.weight_gb + (IsMissing(r.kv_gb) ? 0 : r.kv_gb)) / (count * bw);
  }
  if (!IsMissing(r.weight_gb) && !IsMissing(mem)) {
    r.headroom_gb = count * mem - r.weight_gb - (IsMissing(r.kv_gb) ? 0 : r.kv_gb);
  }
  if (!IsMissing(r.compute_s_per_token) && !IsMissing(r.memory_s_per_step) && !IsMissing(prompt)) {
    const double out_tokens = IsMissing(output) ? 1.0 : output;
    r.estimate_e2e_s = batch * prompt * r.compute_s_per_token +
                       out_tokens * std::max(batch * r.compute_s_per_token, r.memory_s_per_step);
  }
  return r;
}

double LogRooflineBaseline(const TaskContext& c, BaselineMetric metric) {
  const Roofline r = ComputeRoofline(c);
  const double batch = c.workload.batch_size > 0 ? c.workload.batch_size : 1.0;
  const double prompt = Known(c.workload.prompt_tokens);
  const double output = Known(c.workload.output_tokens);
  double v = kMissing;
  switch (metric) {
    case BaselineMetric::kE2eMs: v = r.estimate_e2e_s * 1000.0; break;
    case BaselineMetric::kTtftMs:
      if (!IsMissing(r.compute_s_per_token) && !IsMissing(r.memory_s_per_step) && !IsMissing(prompt)) {
        v = (batch * prompt * r.compute_s_per_token + r.memory_s_per_step) * 1000.0;
      }
      break;
    case BaselineMetric::kTpotMs:
      if (!IsMissing(r.compute_s_per_token) && !IsMissing(r.memory_s_per_step)) {
        v = std::max(batch * r.compute_s_per_token, r.memory_s_per_step) * 1000.0;
      }
      break;
    case BaselineMetric::kThroughput:
      if (!IsMissing(r.estimate_e2e_s) && !IsMissing(output)) v = batch * output / r.estimate_e2e_s;
      break;
    case BaselineMetric::kPeakMemoryGb:
      if (!IsMissing(r.weight_gb)) v = r.weight_gb + (IsMissing(r.kv_gb) ? 0 : r.kv_gb);
      break;
  }
  return IsMissing(v) || !(v > 0) || !std::isfinite(v) ? kMissing : std::log(v);
}

const std::vector<std::string>& ContextNumericFeatureNames() {
  static const std::vector<std::string>* names = new std::vector<std::string>{"log_params_b",
                                                                              "log_layers",
                                                                              "log_hidden",
                                                                              "log_heads",
                                                                              "log_kv_heads",
                                                                              "log_experts",
                                                                              "log_active_experts",
                                                                              "log_count",
                                                                              "log_memory_gb",
                                                                              "log_bandwidth_gbps",
                                                                              "log_tflops",
                                                                              "log_prompt_tokens",
                                                                              "log_output_tokens",
                                                                              "log_batch",
                                                                              "log_request_rate",
                                                                              "shared_prefix_ratio",
                                                                              "log_price_per_hour",
                                                                              "log_total_memory_gb",
                                                                              "log_total_bandwidth_gbps",
                                                                              "log_total_tflops",
                                                                              "bytes_per_param",
                                                                              "log_weight_gb",
                                                                              "log_kv_gb",
                                                                              "log_flops_per_token",
                                                                              "log_compute_s_per_token",
                                                                              "log_memory_s_per_step",
                                                                              "log_compute_over_memory",
                                                                              "signed_log_headroom_gb",
                                                                              "headroom_fraction",
                                                                              "log_roofline_e2e_s",
                                                                              "log_batch_prompt_tokens",
                                                                              "log_batch_output_tokens"};
  return *names;
}

size_t ContextFeatureWidth() {
  using L = FeatureLayout;
  return ContextNumericFeatureNames().size() + 2 * L::kNameBuckets + 4 * L::kSmallBuckets + L::kEmbeddingWidth +
         L::kExtraBuckets;
}

size_t StrategyFeatureWidth() { return FeatureLayout::kComponentBuckets + FeatureLayout::kParamBuckets; }

void CollectContextVocabulary(const TaskContext& c, ContextVocabulary* vocabulary) {
  for (const auto& [name, seed] :
       {std::pair<const std::string*, uint64_t>{&c.model.name, 11}, {&c.hardware.accelerator, 12}}) {
    for (const std::string& token : NameTokens(*name)) vocabulary->insert(VocabularyKey(seed, token));
  }
  for (const auto& [value, seed] : {std::pair<const std::string*, uint64_t>{&c.model.family, 13},
                                    {&c.model.weight_dtype, 14},
                                    {&c.hardware.interconnect, 15},
                                    {&c.workload.dataset, 16}}) {
    if (!value->empty()) vocabulary->insert(VocabularyKey(seed, *value));
  }
}

void EncodeContext(const TaskContext& c, std::vector<float>* out) { EncodeContext(c, nullptr, out); }

void EncodeContext(const TaskContext& c, const ContextVocabulary* vocabulary, std::vector<float>* out) {
  using L = FeatureLayout;
  const auto& m = c.model;
  const auto& h = c.hardware;
  const auto& w = c.workload;
  const Roofline r = ComputeRoofline(c);
  const double count = h.count > 0 ? h.count : kMissing;
  const double batch = Known(w.batch_size);
  auto total = [&](double v) { return IsMissing(count) || IsMissing(Known(v)) ? kMissing : count * v; };
  const float numerics[] = {
      LogOrNaN(Known(m.parameters_b)),
      LogOrNaN(Known(m.layers)),
      LogOrNaN(Known(m.hidden_size)),
      LogOrNaN(Known(m.attention_heads)),
      LogOrNaN(Known(m.kv_heads)),
      m.experts > 0 ? static_cast<float>(std::log(m.experts)) : 0.0f,  // dense models: 1 expert, log 0
      m.active_experts > 0 ? static_cast<float>(std::log(m.active_experts)) : 0.0f,
      LogOrNaN(count),
      LogOrNaN(Known(h.memory_gb)),
      LogOrNaN(Known(h.memory_bandwidth_gbps)),
      LogOrNaN(Known(h.peak_tflops)),
      LogOrNaN(Known(w.prompt_tokens)),
      LogOrNaN(Known(w.output_tokens)),
      LogOrNaN(batch),
      LogOrNaN(Known(w.request_rate_per_s)),
      static_cast<float>(w.shared_prefix_ratio),
      LogOrNaN(Known(h.price_per_hour)),
      LogOrNaN(total(h.memory_gb)),
      LogOrNaN(total(h.memory_bandwidth_gbps)),
      LogOrNaN(total(h.peak_tflops)),
      static_cast<float>(BytesPerParameter(m.weight_dtype)),
      LogOrNaN(r.weight_gb),
      LogOrNaN(r.kv_gb),
      LogOrNaN(r.flops_per_token),
      LogOrNaN(r.compute_s_per_token),
      LogOrNaN(r.memory_s_per_step),
      IsMissing(r.compute_s_per_token) || IsMissing(r.memory_s_per_step)
          ? kNaN
          : static_cast<float>(
                std::log((IsMissing(batch) ? 1.0 : batch) * r.compute_s_per_token / r.memory_s_per_step)),
      SignedLog(r.headroom_gb),
      IsMissing(r.headroom_gb) || IsMissing(total(h.memory_gb))
          ? kNaN
          : static_cast<float>(r.headroom_gb / total(h.memory_gb)),
      LogOrNaN(r.estimate_e2e_s),
      IsMissing(batch) ? kNaN : LogOrNaN(batch * Known(w.prompt_tokens)),
      IsMissing(batch) ? kNaN : LogOrNaN(batch * Known(w.output_tokens)),
  };
  static_assert(sizeof(numerics) / sizeof(numerics[0]) == 32);
  out->insert(out->end(), std::begin(numerics), std::end(numerics));
  TokensHashed(m.name, L::kNameBuckets, 11, vocabulary, out);
  TokensHashed(h.accelerator, L::kNameBuckets, 12, vocabulary, out);
  OneHotHashed(m.family, L::kSmallBuckets, 13, vocabulary, out);
  OneHotHashed(m.weight_dtype, L::kSmallBuckets, 14, vocabulary, out);
  OneHotHashed(h.interconnect, L::kSmallBuckets, 15, vocabulary, out);
  OneHotHashed(w.dataset, L::kSmallBuckets, 16, vocabulary, out);
  for (int i = 0; i < L::kEmbeddingWidth; ++i) {
    out->push_back(i < static_cast<int>(c.embedding.size()) ? c.embedding[i] : kNaN);
  }
  const size_t extra_base = out->size();
  out->resize(extra_base + L::kExtraBuckets, kNaN);
  for (const auto& [k, v] : c.extra) {
    float& slot = (*out)[extra_base + StableHash(absl::AsciiStrToLower(k), 17) % L::kExtraBuckets];
    slot = (std::isnan(slot) ? 0.0f : slot) + static_cast<float>(v);
  }
}

void EncodeStrategy(const Strategy& s, std::vector<float>* out) {
  using L = FeatureLayout;
  const size_t base = out->size();
  out->resize(base + L::kComponentBuckets + L::kParamBuckets, 0.0f);
  for (int i = 0; i < L::kParamBuckets; ++i) (*out)[base + L::kComponentBuckets + i] = kNaN;
  for (const auto& [k, v] : StrategyComponents(s)) {
    (*out)[base + StableHash(k + "=" + v, 21) % L::kComponentBuckets] = 1.0f;
    if (k != "id" && k != "tag") (*out)[base + StableHash(k, 22) % L::kComponentBuckets] = 1.0f;
    double num = 0;
    if (k != "id" && ParseNumber(v, &num)) {
      (*out)[base + L::kComponentBuckets + StableHash(k, 23) % L::kParamBuckets] =
          static_cast<float>(num > 0 ? std::log2(num) : num);
    }
  }
}

}  // namespace accelsel::model
