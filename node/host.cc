// Host description from /proc and a short copy-bandwidth measurement.
#include "node/host.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "util/file.h"

namespace accelsel::node {

int HostCores() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : static_cast<int>(n);
}

std::string CpuModelName(absl::string_view cpuinfo) {
  for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
    if (!absl::StartsWith(line, "model name")) continue;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    std::vector<absl::string_view> words =
        absl::StrSplit(line.substr(colon + 1), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (!words.empty()) return absl::StrJoin(words, " ");
  }
  return "unknown CPU";
}

double MemTotalGb(absl::string_view meminfo) {
  for (absl::string_view line : absl::StrSplit(meminfo, '\n')) {
    if (!absl::ConsumePrefix(&line, "MemTotal:")) continue;
    line = absl::StripAsciiWhitespace(line);
    absl::ConsumeSuffix(&line, "kB");
    uint64_t kb = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kb)) return static_cast<double>(kb) * 1024.0 / 1e9;
  }
  return 0;
}

double MeasureCopyBandwidthGbps(absl::Duration budget) {
  constexpr size_t kBytes = size_t{64} << 20;
  std::vector<char> a(kBytes, 1), b(kBytes, 2);
  std::memcpy(b.data(), a.data(), kBytes);  // warm-up pass: faults pages in
  double best = 0;
  const absl::Time stop = absl::Now() + budget;
  int passes = 0;
  do {
    const absl::Time start = absl::Now();
    if (passes % 2 == 0) {
      std::memcpy(b.data(), a.data(), kBytes);
    } else {
      std::memcpy(a.data(), b.data(), kBytes);
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (seconds > 0) best = std::max(best, 2.0 * kBytes / seconds / 1e9);
    ++passes;
  } while (absl::Now() < stop || passes < 2);
  // Read the buffers so the copies cannot be optimised away.
  volatile char sink = a[kBytes / 2] + b[kBytes / 3];
  (void)sink;
  return best;
}

const v1::HardwareDescriptor& HostHardware() {
  static const v1::HardwareDescriptor* const kHost = [] {
    auto* h = new v1::HardwareDescriptor;
    const auto cpuinfo = util::ReadFile("/proc/cpuinfo");
    const auto meminfo = util::ReadFile("/proc/meminfo");
    h->set_accelerator(absl::StrCat(CpuModelName(cpuinfo.ok() ? *cpuinfo : ""), " (", HostCores(), " cores)"));
    h->set_count(1);
    h->set_memory_gb(MemTotalGb(meminfo.ok() ? *meminfo : ""));
    h->set_memory_bandwidth_gbps(std::round(MeasureCopyBandwidthGbps(kBandwidthBudget)));
    h->set_peak_tflops(0);
    h->set_interconnect("none");
    return h;
  }();
  return *kHost;
}

}  // namespace accelsel::node
