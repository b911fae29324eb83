// A client given several replicas (client/README.md, "Several replicas"): two real servers on 127.0.0.1:0, each over
// its own store; selects are spread over both (round_robin), and when one stops, every select still succeeds on the
// other. Then the same through `accelsel --server A,B`, and a bad list refused as a usage error naming --server.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/run_cli.h"
#include "tests/server/test_server.h"
#include "util/file.h"

namespace accelsel::client {
namespace {

using ::testing::HasSubstr;

// accelsel_rpc_requests_total{method="SelectAccelerator",code="OK"} of `s`: the selects it answered.
double SelectsAnswered(server::Server& s) {
  for (const auto& family : s.metrics().registry().Collect()) {
    if (family.name != "accelsel_rpc_requests_total") continue;
    for (const auto& m : family.metric) {
      std::string method, code;
      for (const auto& l : m.label) {
        if (l.name == "method") method = l.value;
        if (l.name == "code") code = l.value;
      }
      if (method == "SelectAccelerator" && code == "OK") return m.counter.value;
    }
  }
  return 0;
}

v1::SelectAcceleratorRequest Request() {
  v1::SelectAcceleratorRequest r;
  *r.mutable_context() = accelsel::testing::MakeContext(8);
  r.add_candidate_ids("vllm");
  r.add_candidate_ids("tgi");
  return r;
}

std::string TlsFixture(const std::string& name) {
  return absl::StrCat(ACCELSEL_TEST_SOURCE_DIR, "/tests/fixtures/tls/", name);
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(/*tls=*/false); }
  void Start(bool tls) {
    for (auto& s : servers_) s->Shutdown();
    servers_.clear();
    addresses_.clear();
    for (int i = 0; i < 2; ++i) {
      server::ServerOptions o =
          accelsel::testing::TestOptions(accelsel::testing::FreshDir(absl::StrCat("client-replicas-", i)));
      if (tls) {
        o.tls_cert_file = TlsFixture("server.pem");  // valid for localhost and 127.0.0.1
        o.tls_key_file = TlsFixture("server.key");
      }
      auto s = server::Server::Start(o);
      ASSERT_TRUE(s.ok()) << s.status();
      servers_.push_back(*std::move(s));
      addresses_.push_back(absl::StrCat(tls ? "localhost:" : "127.0.0.1:", servers_.back()->port()));
      // Each replica has its own store here (no cluster), so each gets the catalogue.
      ClientOptions one = Options();
      one.target = addresses_.back();
      auto admin = Client::Create(one);
      ASSERT_TRUE(admin.ok()) << admin.status();
      for (const char* id : {"vllm", "tgi"}) {
        auto r = (*admin)->RegisterStrategy(accelsel::testing::MakeStrategy(id));
        ASSERT_TRUE(r.ok()) << r.status();
      }
    }
  }
  void TearDown() override {
    for (auto& s : servers_) s->Shutdown();
  }

  std::string Both() const { return absl::StrCat(addresses_[0], ",", addresses_[1]); }
  // round_robin connects to both and takes a replica as soon as it is ready: the first calls may all go to the
  // first one up, so select until both have answered, within a bound. Every select must succeed.
  void SelectUntilBothAnswered(Client& client) {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    int calls = 0;
    while ((SelectsAnswered(*servers_[0]) == 0 || SelectsAnswered(*servers_[1]) == 0) && absl::Now() < give_up) {
      auto r = client.SelectAccelerator(Request());
      ASSERT_TRUE(r.ok()) << r.status();
      ++calls;
    }
    EXPECT_GT(SelectsAnswered(*servers_[0]), 0) << calls << " selects";
    EXPECT_GT(SelectsAnswered(*servers_[1]), 0) << calls << " selects";
  }
  ClientOptions Options() const {
    ClientOptions o;
    if (!addresses_.empty() && absl::StartsWith(addresses_[0], "localhost:")) {
      o.tls_root_ca_pem = *util::ReadFile(TlsFixture("ca.pem"));
    }
    return o;
  }

  std::vector<std::unique_ptr<server::Server>> servers_;
  std::vector<std::string> addresses_;
};

TEST_F(ReplicasTest, SelectsSpreadOverReplicasAndMoveOnWhenOneStops) {
  ClientOptions options;
  options.target = Both();
  options.initial_backoff_ms = 5;
  options.max_backoff_ms = 50;
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();

  SelectUntilBothAnswered(**client);
  // Once both are ready they take turns (exactly, while both stay ready; the bound leaves room for a reconnect).
  const double before0 = SelectsAnswered(*servers_[0]), before1 = SelectsAnswered(*servers_[1]);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*client)->SelectAccelerator(Request()).ok());
  EXPECT_GE(SelectsAnswered(*servers_[0]) - before0, 5);
  EXPECT_GE(SelectsAnswered(*servers_[1]) - before1, 5);

  // The first replica stops: a call that still lands on it fails UNAVAILABLE and is retried on the other, and the
  // balancer drops it once its connection is gone. No select fails.
  servers_[0]->Shutdown();
  const double survivor = SelectsAnswered(*servers_[1]);
  for (int i = 0; i < 30; ++i) {
    auto r = (*client)->SelectAccelerator(Request());
    ASSERT_TRUE(r.ok()) << "select " << i << " after the stop: " << r.status();
  }
  EXPECT_EQ(SelectsAnswered(*servers_[1]) - survivor, 30);

  // The Select with its fallback says the answer came from a server.
  auto selection = (*client)->Select(Request());
  ASSERT_TRUE(selection.ok()) << selection.status();
  EXPECT_EQ(selection->source, SelectSource::kServer);
}

// With TLS, each connection checks its replica's certificate against the list's first host name (not the resolved
// addresses, which the certificate need not hold).
TEST_F(ReplicasTest, TlsChecksTheFirstNameOfTheList) {
  Start(/*tls=*/true);
  ClientOptions options = Options();
  options.target = Both();  // localhost:A,localhost:B: resolved to 127.0.0.1 (the certificate holds both)
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  SelectUntilBothAnswered(**client);
}

TEST_F(ReplicasTest, CliTakesAListOfReplicas) {
  cli::Result both = cli::RunCommand({"health", "--server", Both()});
  EXPECT_EQ(both.code, 0) << both.err;

  servers_[0]->Shutdown();
  cli::Result one_down = cli::RunCommand({"strategies", "list", "--server", Both()});
  EXPECT_EQ(one_down.code, 0) << one_down.err;
  EXPECT_THAT(one_down.out, HasSubstr("vllm"));

  cli::Result bad = cli::RunCommand({"health", "--server", absl::StrCat(addresses_[1], ",")});
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("--server: \""));
  EXPECT_THAT(bad.err, HasSubstr("an empty item"));
}

}  // namespace
}  // namespace accelsel::client
