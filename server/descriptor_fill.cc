// Descriptor filling by model and accelerator name.
#include "server/descriptor_fill.h"

namespace accelsel::server {

bool FillDescriptors(const datasets::DescriptorTables& tables, const v1::TaskContext& in, v1::TaskContext* out,
                     std::vector<std::string_view>* filled) {
  const model::ModelDescriptor* m = tables.MatchModel(in.model().name());
  const datasets::AcceleratorEntry* a = tables.MatchAccelerator(in.hardware().accelerator());
  if (m == nullptr && a == nullptr) return false;
  v1::TaskContext* target = nullptr;
  // Sets one field when the caller left it unset and the table knows it. `in` is read before `target` is written
  // for each field, so filling in place (out == &in) reads the caller's values.
  auto fill = [&](bool caller_unset, bool table_known, std::string_view path, auto&& set) {
    if (!caller_unset || !table_known) return;
    if (target == nullptr) {
      if (out != &in) *out = in;
      target = out;
    }
    set(target);
    filled->push_back(path);
  };

  if (m != nullptr) {
    const v1::ModelDescriptor& have = in.model();
    fill(have.family().empty(), !m->family.empty(), "context.model.family",
         [&](v1::TaskContext* t) { t->mutable_model()->set_family(m->family); });
    fill(have.parameters_b() == 0, m->parameters_b > 0, "context.model.parameters_b",
         [&](v1::TaskContext* t) { t->mutable_model()->set_parameters_b(m->parameters_b); });
    fill(have.layers() == 0, m->layers > 0, "context.model.layers",
         [&](v1::TaskContext* t) { t->mutable_model()->set_layers(m->layers); });
    fill(have.hidden_size() == 0, m->hidden_size > 0, "context.model.hidden_size",
         [&](v1::TaskContext* t) { t->mutable_model()->set_hidden_size(m->hidden_size); });
    fill(have.attention_heads() == 0, m->attention_heads > 0, "context.model.attention_heads",
         [&](v1::TaskContext* t) { t->mutable_model()->set_attention_heads(m->attention_heads); });
    fill(have.kv_heads() == 0, m->kv_heads > 0, "context.model.kv_heads",
         [&](v1::TaskContext* t) { t->mutable_model()->set_kv_heads(m->kv_heads); });
    // Validation holds active_experts <= experts when experts > 0; a fill must not break it against what the
    // caller sent, so an inconsistent pair leaves the field unknown instead.
    const bool experts_fit = have.active_experts() <= m->experts;
    fill(have.experts() == 0, m->experts > 0 && experts_fit, "context.model.experts",
         [&](v1::TaskContext* t) { t->mutable_model()->set_experts(m->experts); });
    const uint32_t experts = have.experts() != 0 ? have.experts() : (experts_fit ? m->experts : 0);
    fill(have.active_experts() == 0, m->active_experts > 0 && (experts == 0 || m->active_experts <= experts),
         "context.model.active_experts",
         [&](v1::TaskContext* t) { t->mutable_model()->set_active_experts(m->active_experts); });
    fill(have.weight_dtype().empty(), !m->weight_dtype.empty(), "context.model.weight_dtype",
         [&](v1::TaskContext* t) { t->mutable_model()->set_weight_dtype(m->weight_dtype); });
  }
  if (a != nullptr) {
    const v1::HardwareDescriptor& have = in.hardware();
    const model::HardwareDescriptor& d = a->descriptor;
    fill(have.memory_gb() == 0, d.memory_gb > 0, "context.hardware.memory_gb",
         [&](v1::TaskContext* t) { t->mutable_hardware()->set_memory_gb(d.memory_gb); });
    fill(have.memory_bandwidth_gbps() == 0, d.memory_bandwidth_gbps > 0, "context.hardware.memory_bandwidth_gbps",
         [&](v1::TaskContext* t) { t->mutable_hardware()->set_memory_bandwidth_gbps(d.memory_bandwidth_gbps); });
    fill(have.peak_tflops() == 0, d.peak_tflops > 0, "context.hardware.peak_tflops",
         [&](v1::TaskContext* t) { t->mutable_hardware()->set_peak_tflops(d.peak_tflops); });
    fill(have.interconnect().empty(), !d.interconnect.empty(), "context.hardware.interconnect",
         [&](v1::TaskContext* t) { t->mutable_hardware()->set_interconnect(d.interconnect); });
  }
  return target != nullptr;
}

}  // namespace accelsel::server
