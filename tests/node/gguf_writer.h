// Writes small GGUF v3 files for tests: the metadata of a llama model (any KV pairs, a vocabulary array, tensor
// shapes) and no tensor data, which the node's reader never reads.
#ifndef ACCELSEL_TESTS_NODE_GGUF_WRITER_H_
#define ACCELSEL_TESTS_NODE_GGUF_WRITER_H_

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace accelsel::node::testing {

class GgufWriter {
 public:
  void U32(const std::string& key, uint32_t v) { Kv(key, 4, &v, sizeof(v)); }
  void U64(const std::string& key, uint64_t v) { Kv(key, 10, &v, sizeof(v)); }
  void F32(const std::string& key, float v) { Kv(key, 6, &v, sizeof(v)); }
  void Bool(const std::string& key, bool v) {
    const uint8_t b = v ? 1 : 0;
    Kv(key, 7, &b, 1);
  }
  void Str(const std::string& key, const std::string& v) {
    String(&kv_, key);
    Pod(&kv_, uint32_t{8});
    String(&kv_, v);
    ++kv_count_;
  }
  void StrArray(const std::string& key, const std::vector<std::string>& values) {
    String(&kv_, key);
    Pod(&kv_, uint32_t{9});
    Pod(&kv_, uint32_t{8});
    Pod(&kv_, uint64_t{values.size()});
    for (const auto& v : values) String(&kv_, v);
    ++kv_count_;
  }
  void F32Array(const std::string& key, const std::vector<float>& values) {
    String(&kv_, key);
    Pod(&kv_, uint32_t{9});
    Pod(&kv_, uint32_t{6});
    Pod(&kv_, uint64_t{values.size()});
    for (float v : values) Pod(&kv_, v);
    ++kv_count_;
  }
  void Tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t ggml_type = 1) {
    String(&tensors_, name);
    Pod(&tensors_, static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) Pod(&tensors_, d);
    Pod(&tensors_, ggml_type);
    Pod(&tensors_, uint64_t{0});
    ++tensor_count_;
  }

  std::string Bytes(uint32_t version = 3) const {
    std::string out = "GGUF";
    Pod(&out, version);
    Pod(&out, tensor_count_);
    Pod(&out, kv_count_);
    return out + kv_ + tensors_;
  }

  void Write(const std::string& path, uint32_t version = 3) const {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << Bytes(version);
  }

 private:
  template <typename T>
  static void Pod(std::string* out, T v) {
    out->append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  static void String(std::string* out, const std::string& s) {
    Pod(out, uint64_t{s.size()});
    out->append(s);
  }
  void Kv(const std::string& key, uint32_t type, const void* v, size_t n) {
    String(&kv_, key);
    Pod(&kv_, type);
    kv_.append(static_cast<const char*>(v), n);
    ++kv_count_;
  }

  std::string kv_, tensors_;
  uint64_t kv_count_ = 0, tensor_count_ = 0;
};

// A llama model's metadata as node/make_models.py writes it (file type F16 unless given), with layers x the
// usual tensors so the parameter count is known: per layer 4 attention matrices of hidden x hidden (K and V
// narrower with fewer KV heads) and 3 FFN matrices of hidden x ffn (per expert with experts > 0).
inline GgufWriter LlamaModel(uint32_t layers, uint32_t hidden, uint32_t heads, uint32_t kv_heads, uint32_t ffn,
                             uint32_t experts = 0, uint32_t used = 0, uint32_t file_type = 1) {
  GgufWriter w;
  w.Str("general.architecture", "llama");
  w.Str("general.name", "test model");
  w.U32("general.file_type", file_type);
  w.U32("llama.block_count", layers);
  w.U32("llama.context_length", 4096);
  w.U32("llama.embedding_length", hidden);
  w.U32("llama.feed_forward_length", ffn);
  w.U32("llama.attention.head_count", heads);
  w.U32("llama.attention.head_count_kv", kv_heads);
  w.F32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  if (experts > 0) {
    w.U32("llama.expert_count", experts);
    w.U32("llama.expert_used_count", used);
  }
  w.Bool("tokenizer.ggml.add_bos_token", true);
  w.StrArray("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"});
  w.F32Array("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -3, -4, -5});
  const uint64_t vocab = 8, head_dim = hidden / heads, kv = head_dim * kv_heads;
  w.Tensor("token_embd.weight", {hidden, vocab});
  for (uint32_t l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    w.Tensor(p + "attn_q.weight", {hidden, hidden});
    w.Tensor(p + "attn_k.weight", {hidden, kv});
    w.Tensor(p + "attn_v.weight", {hidden, kv});
    w.Tensor(p + "attn_output.weight", {hidden, hidden});
    w.Tensor(p + "attn_norm.weight", {hidden}, 0);
    if (experts > 0) {
      w.Tensor(p + "ffn_gate_inp.weight", {hidden, experts}, 0);
      w.Tensor(p + "ffn_gate_exps.weight", {hidden, ffn, experts});
      w.Tensor(p + "ffn_up_exps.weight", {hidden, ffn, experts});
      w.Tensor(p + "ffn_down_exps.weight", {ffn, hidden, experts});
    } else {
      w.Tensor(p + "ffn_gate.weight", {hidden, ffn});
      w.Tensor(p + "ffn_up.weight", {hidden, ffn});
      w.Tensor(p + "ffn_down.weight", {ffn, hidden});
    }
  }
  w.Tensor("output.weight", {hidden, vocab});
  return w;
}

}  // namespace accelsel::node::testing

#endif  // ACCELSEL_TESTS_NODE_GGUF_WRITER_H_
