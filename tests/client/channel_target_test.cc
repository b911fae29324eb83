// ChannelTarget (client/client.h): each accepted form of a server address and the gRPC target it becomes, and each
// refused one with the name of its source and the rule; the channel arguments carry round_robin beside the retries.
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace accelsel::client {
namespace {

using ::testing::HasSubstr;

std::string TargetOf(const std::string& addresses) {
  auto target = ChannelTarget(addresses);
  EXPECT_TRUE(target.ok()) << addresses << ": " << target.status();
  return target.ok() ? *target : "";
}

TEST(ChannelTargetTest, OneAddressStaysAsItIs) {
  EXPECT_EQ(TargetOf("127.0.0.1:50051"), "127.0.0.1:50051");
  EXPECT_EQ(TargetOf("accelsel.example:50051"), "accelsel.example:50051");  // gRPC's DNS resolver re-resolves it
  EXPECT_EQ(TargetOf("[::1]:50051"), "[::1]:50051");
  EXPECT_EQ(TargetOf("  127.0.0.1:50051 "), "127.0.0.1:50051");
}

TEST(ChannelTargetTest, UrisPassThrough) {
  for (const char* uri :
       {"dns:///accelsel.example:50051", "dns://8.8.8.8/accelsel.example:50051", "ipv4:10.0.0.1:50051,10.0.0.2:50051",
        "ipv6:[::1]:50051,[::2]:50051", "unix:/run/accelsel.sock", "unix-abstract:accelsel", "xds:///accelsel"}) {
    EXPECT_EQ(TargetOf(uri), uri);
  }
}

TEST(ChannelTargetTest, ListOfIpLiteralsBecomesGrpcsListForm) {
  EXPECT_EQ(TargetOf("10.0.0.1:50051,10.0.0.2:50051"), "ipv4:10.0.0.1:50051,10.0.0.2:50051");
  EXPECT_EQ(TargetOf("10.0.0.1:50051, 10.0.0.2:50052 ,10.0.0.3:1"), "ipv4:10.0.0.1:50051,10.0.0.2:50052,10.0.0.3:1");
  EXPECT_EQ(TargetOf("[::1]:50051,[fe80::2]:50051"), "ipv6:[::1]:50051,[fe80::2]:50051");
  // One replica named twice is one replica.
  EXPECT_EQ(TargetOf("10.0.0.1:50051,10.0.0.1:50051"), "ipv4:10.0.0.1:50051");
  // The result passes through again unchanged: a caller may convert once and hand it on.
  EXPECT_EQ(TargetOf(TargetOf("10.0.0.1:50051,10.0.0.2:50051")), "ipv4:10.0.0.1:50051,10.0.0.2:50051");
}

TEST(ChannelTargetTest, NamesInAListAreResolvedOnce) {
  // "localhost" has an IPv4 address on every test machine (/etc/hosts); its IPv6 one, if any, is not taken too.
  EXPECT_EQ(TargetOf("localhost:50051,127.0.0.2:50052"), "ipv4:127.0.0.1:50051,127.0.0.2:50052");
  EXPECT_EQ(TargetOf("localhost:50051,127.0.0.1:50051"), "ipv4:127.0.0.1:50051");

  auto unknown = ChannelTarget("127.0.0.1:1,no-such-host.invalid:50051", "--server");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(unknown.status().code() == absl::StatusCode::kNotFound ||
              unknown.status().code() == absl::StatusCode::kUnavailable)
      << unknown.status();
  EXPECT_THAT(unknown.status().message(), HasSubstr("--server: cannot resolve \"no-such-host.invalid\""));
}

TEST(ChannelTargetTest, RefusesWithTheSourceAndTheRule) {
  struct Case {
    const char* addresses;
    const char* why;
  };
  for (const Case& c : {
           Case{"", "no address"},
           Case{"  ", "no address"},
           Case{"10.0.0.1:50051,,10.0.0.2:50051", "an empty item"},
           Case{"10.0.0.1:50051,", "an empty item"},
           Case{"10.0.0.1", "\"10.0.0.1\" has no port"},
           Case{"10.0.0.1:50051,10.0.0.2", "\"10.0.0.2\" has no port"},
           Case{"10.0.0.1:", "\"10.0.0.1:\" has no port"},
           Case{":50051", "\":50051\" has no host"},
           Case{"10.0.0.1:http", "the port must be 1 to 65535"},
           Case{"10.0.0.1:0", "the port must be 1 to 65535"},
           Case{"10.0.0.1:65536", "the port must be 1 to 65535"},
           Case{"::1:50051", "an IPv6 address goes in brackets"},
           Case{"[::1:50051", "lacks its ']'"},
           Case{"[10.0.0.1]:50051", "is not an IPv6 address"},
           Case{"[::1]", "has no port"},
           Case{"10.0.0.1:50051,[::1]:50051", "IPv4 and IPv6 addresses in one list"},
           Case{"10.0.0.1:50051,dns:///b:50051", "a URI (dns:///b:50051) in a list"},
           Case{"dns:///a:50051,b:50051", "a dns: URI names one target, not a list"},
       }) {
    auto target = ChannelTarget(c.addresses, "--server");
    ASSERT_FALSE(target.ok()) << c.addresses << " gave " << *target;
    EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument) << c.addresses;
    EXPECT_THAT(target.status().message(), HasSubstr(absl::StrCat("--server: \"", c.addresses, "\": ")));
    EXPECT_THAT(target.status().message(), HasSubstr(c.why)) << c.addresses;
    EXPECT_THAT(target.status().message(), HasSubstr("host:port,host:port")) << c.addresses;
  }
  // Without a name, the field's.
  EXPECT_THAT(ChannelTarget("a:1,,b:2").status().message(), HasSubstr("target: \"a:1,,b:2\": an empty item"));
}

TEST(ChannelTargetTest, ClientRefusesABadTargetNamingTheField) {
  ClientOptions options;
  options.target = "10.0.0.1:50051,";
  auto client = Client::Create(options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("target: \"10.0.0.1:50051,\": an empty item"));
}

TEST(ChannelTargetTest, ChannelArgumentsBalanceRoundRobinBesideTheRetries) {
  ClientOptions options;
  const grpc::ChannelArguments args = ClientChannelArguments(options);
  const grpc_channel_args c_args = args.c_channel_args();  // points into `args`
  std::string lb_policy, service_config;
  for (size_t i = 0; i < c_args.num_args; ++i) {
    const grpc_arg& arg = c_args.args[i];
    if (arg.type != GRPC_ARG_STRING) continue;
    if (std::string(arg.key) == GRPC_ARG_LB_POLICY_NAME) lb_policy = arg.value.string;
    if (std::string(arg.key) == GRPC_ARG_SERVICE_CONFIG) service_config = arg.value.string;
  }
  EXPECT_EQ(lb_policy, "round_robin");
  // The service config keeps the retries and names no policy of its own, which would override the argument.
  EXPECT_EQ(service_config, RetryServiceConfig(options));
  EXPECT_THAT(service_config, HasSubstr("retryPolicy"));
  EXPECT_THAT(service_config, ::testing::Not(HasSubstr("loadBalancing")));
}

}  // namespace
}  // namespace accelsel::client
