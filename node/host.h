// The HardwareDescriptor of the machine the node runs on: CPU model and core count, memory, and a measured memory
// bandwidth (the feature that bounds token generation on a CPU).
#ifndef ACCELSEL_NODE_HOST_H_
#define ACCELSEL_NODE_HOST_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::node {

// This host, computed once per process (the bandwidth measurement takes about `kBandwidthBudget`):
//   accelerator = "<CPU model name> (<N> cores)", e.g. "AMD EPYC (2 cores)": the model name as /proc/cpuinfo
//     gives it and the online CPU count, and nothing measured, so the name (part of the exact-context identity)
//     is the same on every run;
//   count = 1 (the whole CPU is one device); memory_gb = MemTotal; memory_bandwidth_gbps = MeasureCopyBandwidthGbps,
//   rounded to whole GB/s; peak_tflops = 0 (unknown); interconnect = "none".
const v1::HardwareDescriptor& HostHardware();

// Online CPUs (sysconf), at least 1.
int HostCores();

// The first "model name" of /proc/cpuinfo text, whitespace-collapsed; "unknown CPU" when there is none (e.g. on
// architectures that name the field otherwise).
std::string CpuModelName(absl::string_view cpuinfo);

// MemTotal of /proc/meminfo text, GB (1e9 bytes); 0 when absent.
double MemTotalGb(absl::string_view meminfo);

inline constexpr absl::Duration kBandwidthBudget = absl::Milliseconds(250);

// memcpy between two 64 MiB buffers (far beyond any cache here) for about `budget`: bytes read + written per second,
// GB/s, the best of the passes (the first pass also faults the pages in and is not counted).
double MeasureCopyBandwidthGbps(absl::Duration budget);

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_HOST_H_
