// node/host: /proc parsing, a measured bandwidth, and a host descriptor the server accepts.
#include "node/host.h"

#include "gtest/gtest.h"

namespace accelsel::node {
namespace {

TEST(HostTest, CpuModelNameIsTheFirstModelNameCollapsed) {
  EXPECT_EQ(CpuModelName("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD  EPYC   7B13\n"
                         "model name\t: other\n"),
            "AMD EPYC 7B13");
  EXPECT_EQ(CpuModelName("processor : 0\nCPU part : 0xd0c\n"), "unknown CPU");
}

TEST(HostTest, MemTotalInGigabytes) {
  EXPECT_DOUBLE_EQ(MemTotalGb("MemFree:  10 kB\nMemTotal:       24576000 kB\n"), 24576000.0 * 1024 / 1e9);
  EXPECT_EQ(MemTotalGb("nothing here"), 0);
}

TEST(HostTest, DescribesThisMachine) {
  const v1::HardwareDescriptor& h = HostHardware();
  EXPECT_NE(h.accelerator().find(" cores)"), std::string::npos) << h.accelerator();
  EXPECT_EQ(h.count(), 1u);
  EXPECT_GT(h.memory_gb(), 0);
  EXPECT_GT(h.memory_bandwidth_gbps(), 0);
  // Cached: the second call is the same object, measured once.
  EXPECT_EQ(&HostHardware(), &h);
  EXPECT_GE(HostCores(), 1);
}

}  // namespace
}  // namespace accelsel::node
