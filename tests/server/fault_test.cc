// Server-level fault tests: a full disk (RocksDB WAL appends fail) ends the ReportRun stream UNAVAILABLE with no
// acknowledgement, also for a client that only waits for its acks, and ingest resumes when space returns; a corrupt
// model blob makes the server serve the previous version.
#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_manager.h"
#include "tests/server/test_server.h"
#include "tests/test_util/fault_env.h"

namespace accelsel::testing {
namespace {

struct StreamResult {
  grpc::Status status;
  int durable = 0;
  int duplicate = 0;
  int acks = 0;
  std::vector<std::string> rejections;  // "run_id: reason"
};

StreamResult Send(Connection& conn, const std::vector<v1::RunReport>& reports) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = conn.selector->ReportRun(&ctx);
  for (const auto& r : reports) {
    if (!stream->Write(r)) break;
  }
  stream->WritesDone();
  StreamResult out;
  v1::RunAck ack;
  while (stream->Read(&ack)) {
    ++out.acks;
    if (ack.result() != v1::RunAck::RESULT_DURABLE && ack.result() != v1::RunAck::RESULT_DUPLICATE) {
      out.rejections.push_back(ack.run_id() + ": " + ack.reason());
    }
    out.durable += ack.result() == v1::RunAck::RESULT_DURABLE;
    out.duplicate += ack.result() == v1::RunAck::RESULT_DUPLICATE;
  }
  out.status = stream->Finish();
  return out;
}

TEST(FaultTest, FullDiskEndsStreamUnavailableWithoutAckAndIngestResumes) {
  FaultEnv env;
  auto o = TestOptions(FreshDir("fault-disk"));
  o.storage_env = &env;
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto conn = Connect((*s)->port());
  // The first report carries its strategy's definition (the catalogue is empty).
  std::vector<v1::RunReport> first = {MakeReport("ok-1", "vllm", 1, 100)};
  *first[0].mutable_strategy() = MakeStrategy("vllm");
  const StreamResult before = Send(conn, first);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  ASSERT_EQ(before.durable, 1);

  env.fail_wal_appends = true;
  std::vector<v1::RunReport> during;
  for (int i = 0; i < 5; ++i) during.push_back(MakeReport(absl::StrCat("full-", i), "vllm", 2, 100 + i));
  const StreamResult failed = Send(conn, during);
  EXPECT_GT(env.wal_failures.load(), 0) << "the fault was never hit";
  EXPECT_EQ(failed.status.error_code(), grpc::StatusCode::UNAVAILABLE) << failed.status.error_message();
  EXPECT_EQ(failed.durable + failed.duplicate, 0) << "nothing may be acknowledged while the disk is full";
  EXPECT_EQ((*s)->core().store()->RunCount(), 1u);

  env.fail_wal_appends = false;
  // Space is back: the client resends. The first write after the fault may still meet the store's recovery.
  StreamResult resumed;
  for (int attempt = 0; attempt < 20; ++attempt) {
    resumed = Send(conn, during);
    if (resumed.status.ok()) break;
    EXPECT_EQ(resumed.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.error_message();
  EXPECT_EQ(resumed.durable + resumed.duplicate, 5);
  EXPECT_EQ((*s)->core().store()->RunCount(), 6u);
  (*s)->Shutdown();
}

// A node keeps one stream open and waits for the ack of what it sent. When that report's commit fails, the stream
// must end UNAVAILABLE right away, whatever the client does next: the server may not wait for another report or
// a half-close, which an idle node never sends. The ack it already got stays; the failed report gets none.
TEST(FaultTest, FailedCommitEndsAnIdleStreamWithoutWaitingForTheClient) {
  FaultEnv env;
  auto o = TestOptions(FreshDir("fault-idle"));
  o.storage_env = &env;
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto conn = Connect((*s)->port());
  grpc::ClientContext ctx;
  // The bound of the wait: a server that still waits for the client ends the call DEADLINE_EXCEEDED instead.
  SetDeadline(&ctx, 20);
  auto stream = conn.selector->ReportRun(&ctx);
  v1::RunReport first = MakeReport("idle-ok", "vllm", 1, 100);
  *first.mutable_strategy() = MakeStrategy("vllm");
  ASSERT_TRUE(stream->Write(first));
  v1::RunAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.result(), v1::RunAck::RESULT_DURABLE);
  EXPECT_EQ(ack.run_id(), "idle-ok");

  env.fail_wal_appends = true;
  ASSERT_TRUE(stream->Write(MakeReport("idle-lost", "vllm", 2, 100)));
  // Nothing more is sent and the stream stays open for writes: the client only waits.
  const bool acked = stream->Read(&ack);
  EXPECT_FALSE(acked) << "acknowledged " << ack.run_id() << " although its commit failed";
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_GT(env.wal_failures.load(), 0) << "the fault was never hit";
  EXPECT_EQ((*s)->core().store()->RunCount(), 1u);

  // Space is back: the client resends what was not acknowledged (the store may still be recovering at first).
  // This also moves the store past its failed WAL before the shutdown flushes it.
  env.fail_wal_appends = false;
  StreamResult resent;
  for (int attempt = 0; attempt < 20; ++attempt) {
    resent = Send(conn, {MakeReport("idle-lost", "vllm", 2, 100)});
    if (resent.status.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(resent.status.ok()) << resent.status.error_message();
  EXPECT_EQ(resent.durable, 1);
  EXPECT_EQ((*s)->core().store()->RunCount(), 2u);
  (*s)->Shutdown();
}

TEST(FaultTest, CorruptModelBlobServesThePreviousVersion) {
  const std::string dir = FreshDir("fault-blob");
  auto o = TestOptions(dir);
  uint64_t good = 0;
  {
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    auto conn = Connect((*s)->port());
    // Enough telemetry for a model: two strategies over 32 batch sizes, 3 runs each. Only the first report of
    // each strategy carries its definition; the later ones refer to it by id on the same stream.
    std::vector<v1::RunReport> runs;
    for (uint32_t batch = 1; batch <= 32; ++batch) {
      for (const char* id : {"small", "large"}) {
        for (int rep = 0; rep < 3; ++rep) {
          const double ms = std::string(id) == "small" ? 50.0 * batch : 200.0 + 10.0 * batch;
          runs.push_back(MakeReport(absl::StrCat(id, "-", batch, "-", rep), id, batch, ms * (1 + 0.01 * rep)));
          if (batch == 1 && rep == 0) *runs.back().mutable_strategy() = MakeStrategy(id);
        }
      }
    }
    const StreamResult sent = Send(conn, runs);
    ASSERT_TRUE(sent.status.ok()) << sent.status.error_message();
    ASSERT_EQ(sent.durable, static_cast<int>(runs.size())) << ::testing::PrintToString(sent.rejections);
    auto trained = (*s)->core().models().RetrainNow();
    ASSERT_TRUE(trained.ok()) << trained.status();
    v1::GetModelInfoResponse info;
    ASSERT_TRUE((*s)->core().GetModelInfo(&info).ok());
    good = info.serving_version();
    ASSERT_GT(good, 0u) << "the first model should be promoted";
    // A newer version whose blob is damaged, recorded as the one to serve (as if the write had been torn).
    auto blob = (*s)->core().store()->GetModel(good);
    ASSERT_TRUE(blob.ok()) << blob.status();
    storage::ModelBlob bad = *blob;
    bad.version = good + 1;
    bad.info.set_version(good + 1);
    bad.blob[bad.blob.size() / 2] ^= 0x5a;
    bad.blob.resize(bad.blob.size() - 7);
    ASSERT_TRUE((*s)->core().store()->PutModel(bad).ok());
    ASSERT_TRUE((*s)->core().store()->PutMeta("serving_version", absl::StrCat(good + 1)).ok());
    (*s)->Shutdown();
  }
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  v1::GetModelInfoResponse info;
  ASSERT_TRUE((*s)->core().GetModelInfo(&info).ok());
  EXPECT_EQ(info.serving_version(), good);
  // And it answers selections with that model.
  auto conn = Connect((*s)->port());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(4);
  v1::SelectAcceleratorResponse resp;
  ASSERT_TRUE(conn.selector->SelectAccelerator(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.model_version(), good);
  (*s)->Shutdown();
}

}  // namespace
}  // namespace accelsel::testing
