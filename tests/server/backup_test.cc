// Online backup (ModelAdmin.Backup) and restore, and retention of old runs, on the real server: RocksDB in a temp
// folder, 127.0.0.1:0, a real gRPC client.
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

using ::testing::HasSubstr;

struct Running {
  std::unique_ptr<server::Server> server;
  Connection conn;
};

Running Start(const server::ServerOptions& options) {
  Running r;
  auto s = server::Server::Start(options);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return r;
  r.server = *std::move(s);
  r.conn = Connect(r.server->port());
  return r;
}

std::vector<v1::RunAck> Report(Connection& conn, const std::vector<v1::RunReport>& reports) {
  grpc::ClientContext ctx;
  return ReportAll(*conn.selector, reports, &ctx);
}

grpc::Status Backup(Connection& conn, const std::string& dir, v1::BackupResponse* response) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::BackupRequest request;
  request.set_dir(dir);
  return conn.admin->Backup(&ctx, request, response);
}

uint64_t RunsStored(Connection& conn) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::GetModelInfoResponse info;
  EXPECT_TRUE(conn.selector->GetModelInfo(&ctx, {}, &info).ok());
  return info.runs_stored();
}

TEST(BackupTest, ABackupTakenWhileServingRestoresEveryAcknowledgedRun) {
  const std::string backups = FreshDir("backups");
  server::ServerOptions options = TestOptions(FreshDir("backup-live"));
  options.backup_dir = backups;
  Running live = Start(options);
  ASSERT_NE(live.server, nullptr);

  std::vector<v1::RunReport> reports;
  for (int i = 0; i < 60; ++i) {
    v1::RunReport r = MakeReport(absl::StrCat("b", i), i % 2 ? "fast" : "slow", 8, i % 2 ? 100 : 300);
    *r.mutable_strategy() = MakeStrategy(r.strategy_id());
    reports.push_back(r);
  }
  std::vector<v1::RunAck> acks = Report(live.conn, reports);
  ASSERT_EQ(acks.size(), reports.size());
  for (const auto& a : acks) ASSERT_EQ(a.result(), v1::RunAck::RESULT_DURABLE) << a.reason();

  v1::BackupResponse done;
  grpc::Status st = Backup(live.conn, "nightly", &done);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(done.runs(), 60u);
  EXPECT_EQ(std::filesystem::path(done.dir()), std::filesystem::absolute(backups) / "nightly");
  EXPECT_GE(done.seconds(), 0);

  // Refusals name the field and the rule; nothing is written.
  v1::BackupResponse refused;
  st = Backup(live.conn, "nightly", &refused);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << st.error_message();
  for (const std::string& outside : {std::string("../escape"), std::string("/tmp/elsewhere"), std::string("")}) {
    st = Backup(live.conn, outside, &refused);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << outside;
    EXPECT_THAT(st.error_message(), HasSubstr("dir: ")) << outside;
  }
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(backups).parent_path() / "escape"));

  // The operator's command does the same.
  std::ostringstream out, err;
  const int code = client::cli::RunCli(
      {"admin", "backup", "from-cli", "--server", absl::StrCat("127.0.0.1:", live.server->port())}, out, err);
  EXPECT_EQ(code, 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("backup of 60 run(s) written to "));
  EXPECT_THAT(out.str(), HasSubstr("from-cli"));
  EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::path(backups) / "from-cli"));

  // The live server goes on taking runs; the backup keeps its moment.
  ASSERT_EQ(Report(live.conn, {MakeReport("after-backup", "fast", 8, 100)}).size(), 1u);
  EXPECT_EQ(RunsStored(live.conn), 61u);
  live.server->Shutdown();

  // Restore: a server on (a copy of) the backup folder has every run acknowledged before it, and its catalogue.
  const std::string restored_dir = FreshDir("backup-restored") + "/data";
  std::filesystem::copy(done.dir(), restored_dir, std::filesystem::copy_options::recursive);
  Running restored = Start(TestOptions(restored_dir));
  ASSERT_NE(restored.server, nullptr);
  EXPECT_EQ(RunsStored(restored.conn), 60u);
  std::vector<v1::RunReport> resend = reports;
  for (auto& r : resend) r.clear_strategy();  // the restored catalogue must know the strategies by id
  acks = Report(restored.conn, resend);
  ASSERT_EQ(acks.size(), resend.size());
  for (const auto& a : acks) EXPECT_EQ(a.result(), v1::RunAck::RESULT_DUPLICATE) << a.run_id() << " " << a.reason();
  acks = Report(restored.conn, {MakeReport("after-backup", "fast", 8, 100)});
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE);
}

TEST(BackupTest, IsRefusedWithoutABackupFolder) {
  Running live = Start(TestOptions(FreshDir("backup-off")));
  ASSERT_NE(live.server, nullptr);
  v1::BackupResponse response;
  grpc::Status st = Backup(live.conn, "x", &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("--backup_dir"));
}

TEST(RetentionServerTest, RunsOlderThanTheRetentionLeaveTheStoreAndTheGauge) {
  server::ServerOptions options = TestOptions(FreshDir("retention-live"));
  options.run_retention = absl::Hours(24 * 30);
  options.run_retention_interval = absl::Milliseconds(50);
  Running live = Start(options);
  ASSERT_NE(live.server, nullptr);
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  std::vector<v1::RunReport> reports;
  for (int i = 0; i < 10; ++i) {
    v1::RunReport r = MakeReport(absl::StrCat("r", i), "fast", 8, 100);
    *r.mutable_strategy() = MakeStrategy("fast");
    // Half are 40 days old (a node's backlog sent late), half recent.
    r.set_time_unix_ms(i < 5 ? now_ms - int64_t{40} * 24 * 3600 * 1000 : now_ms - 1000);
    reports.push_back(r);
  }
  std::vector<v1::RunAck> acks = Report(live.conn, reports);
  ASSERT_EQ(acks.size(), reports.size());
  for (const auto& a : acks) ASSERT_EQ(a.result(), v1::RunAck::RESULT_DURABLE) << a.reason();
  // The next pass (every 50 ms) deletes the five old runs, then counts them.
  server::Metrics& metrics = *live.server->core().metrics();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (metrics.runs_expired().Value() < 5 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(metrics.runs_expired().Value(), 5.0);
  EXPECT_EQ(metrics.runs_stored().Value(), 5.0);
  EXPECT_EQ(RunsStored(live.conn), 5u);
}

}  // namespace
}  // namespace accelsel::testing
