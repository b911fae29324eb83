// Filling a task context by name: the descriptor fields a caller left unset (0 or empty) are taken from the
// descriptor tables (data/descriptors/, the ones the seed import uses) when the context names a model or an
// accelerator they list. SelectAccelerator and ReportRun apply the same rules, so a node that sends only names lands
// in the same context (weight_dtype is part of its identity) for its selections, its stored runs and the seeded runs.
#ifndef ACCELSEL_SERVER_DESCRIPTOR_FILL_H_
#define ACCELSEL_SERVER_DESCRIPTOR_FILL_H_

#include <string_view>
#include <vector>

#include "accelsel/v1/accelsel.pb.h"
#include "datasets/llm_inference_bench.h"

namespace accelsel::server {

// Fills the unset descriptor fields of `in` from `tables`: model.family, parameters_b, layers, hidden_size,
// attention_heads, kv_heads, experts, active_experts, weight_dtype by model.name (DescriptorTables::MatchModel), and
// hardware.memory_gb, memory_bandwidth_gbps, peak_tflops, interconnect by hardware.accelerator (MatchAccelerator:
// a label or a canonical name). A field the caller set is kept, and so are the names and every other field; a table
// value of 0 or empty (unknown) fills nothing. experts and active_experts are left unset where the table's value
// would break "active_experts <= experts" against the caller's value.
//
// `in` is only read. The first field filled copies `in` into `*out` and is written there (`out` may be `&in`: filled
// in place); nothing is copied when nothing is filled. Appends to `filled` the paths of the fields set, from the
// request's root in proto field order ("context.hardware.memory_bandwidth_gbps"). Returns whether any was.
bool FillDescriptors(const datasets::DescriptorTables& tables, const v1::TaskContext& in, v1::TaskContext* out,
                     std::vector<std::string_view>* filled);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_DESCRIPTOR_FILL_H_
