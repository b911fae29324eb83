// TelemetrySender against an in-process ReportRun service that breaks streams, loses acks and holds acks.
#include "client/telemetry_sender.h"

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_server.h"

namespace accelsel::client {
namespace {

v1::RunReport MakeReport(const std::string& run_id, double latency_ms) {
  v1::RunReport r;
  r.set_run_id(run_id);
  r.set_node_id("node-test");
  r.set_strategy_id("vllm");
  r.set_status(v1::RUN_STATUS_OK);
  r.mutable_metrics()->set_e2e_latency_ms(latency_ms);
  return r;
}

ClientOptions FastOptions(const std::string& target) {
  ClientOptions o;
  o.target = target;
  o.initial_backoff_ms = 5;
  o.max_backoff_ms = 50;
  return o;
}

// Records every ack the sender surfaces, per run_id.
struct AckLog {
  absl::Mutex mu;
  std::map<std::string, int> acks ABSL_GUARDED_BY(mu);
  std::map<std::string, std::string> rejections ABSL_GUARDED_BY(mu);

  void Attach(TelemetrySenderOptions* o) {
    o->on_ack = [this](const v1::RunAck& ack) {
      absl::MutexLock l(&mu);
      ++acks[ack.run_id()];
    };
    o->on_rejected = [this](const std::string& id, const std::string& reason) {
      absl::MutexLock l(&mu);
      rejections[id] = reason;
    };
  }
};

TEST(TelemetrySenderTest, EveryReportAcknowledgedExactlyOnceAcrossBrokenStreams) {
  testing::FakeServer server;
  server.service().set_break_after_acks(7);
  server.service().set_store_before_break(true);  // some acks are lost after the write: resends are duplicates

  constexpr int kReports = 300;
  constexpr size_t kCapacity = 16;
  AckLog log;
  TelemetrySenderOptions options;
  options.capacity_reports = kCapacity;
  options.block_when_full = true;
  log.Attach(&options);
  TelemetrySender sender(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()),
                         FastOptions(server.address()), options);

  int invalid = 0;
  for (int i = 0; i < kReports; ++i) {
    const bool bad = i % 50 == 49;
    invalid += bad ? 1 : 0;
    ASSERT_TRUE(sender.Send(MakeReport(absl::StrCat("run-", i), bad ? -1.0 : 10.0 + i)).ok());
  }
  ASSERT_TRUE(sender.Flush(absl::Seconds(60)).ok());

  const TelemetrySenderStats st = sender.stats();
  EXPECT_EQ(st.accepted, static_cast<uint64_t>(kReports));
  EXPECT_EQ(st.durable + st.duplicate + st.rejected, static_cast<uint64_t>(kReports));
  EXPECT_EQ(st.rejected, static_cast<uint64_t>(invalid));
  EXPECT_EQ(st.buffered, 0u);
  EXPECT_LE(st.max_buffered, kCapacity);
  EXPECT_EQ(st.max_buffered, kCapacity) << "300 reports through a 16-slot buffer must fill it";
  EXPECT_GT(st.streams_opened, 1u);
  EXPECT_GT(st.resent, 0u);
  EXPECT_GT(st.duplicate, 0u) << "a report stored before its ack was lost comes back as duplicate";

  absl::MutexLock l(&log.mu);
  ASSERT_EQ(log.acks.size(), static_cast<size_t>(kReports));
  for (const auto& [id, n] : log.acks) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(log.rejections.size(), static_cast<size_t>(invalid));
  EXPECT_EQ(log.rejections.count("run-49"), 1u);
  EXPECT_NE(log.rejections["run-49"].find("e2e_latency_ms"), std::string::npos);
  // The server holds every valid report exactly once (a set; the duplicates above prove resends reached it).
  EXPECT_EQ(server.service().stored().size(), static_cast<size_t>(kReports - invalid));
}

TEST(TelemetrySenderTest, FullBufferReturnsResourceExhaustedWhenNotBlocking) {
  testing::FakeServer server;
  server.service().set_hold_acks(true);
  TelemetrySenderOptions options;
  options.capacity_reports = 4;
  options.block_when_full = false;
  TelemetrySender sender(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()),
                         FastOptions(server.address()), options);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(sender.Send(MakeReport(absl::StrCat("r", i), 1)).ok());
  absl::Status full = sender.Send(MakeReport("r4", 1));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_EQ(sender.stats().buffered, 4u);
  EXPECT_EQ(sender.Flush(absl::Milliseconds(100)).code(), absl::StatusCode::kDeadlineExceeded);

  server.service().set_hold_acks(false);
  ASSERT_TRUE(sender.Flush(absl::Seconds(20)).ok());
  EXPECT_TRUE(sender.Send(MakeReport("r4", 1)).ok());
  ASSERT_TRUE(sender.Flush(absl::Seconds(20)).ok());
  EXPECT_EQ(sender.stats().durable, 5u);
  EXPECT_EQ(sender.stats().max_buffered, 4u);
}

TEST(TelemetrySenderTest, BlockingSendWaitsForAcknowledgements) {
  testing::FakeServer server;
  server.service().set_hold_acks(true);
  TelemetrySenderOptions options;
  options.capacity_reports = 2;
  options.block_when_full = true;
  TelemetrySender sender(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()),
                         FastOptions(server.address()), options);
  std::atomic<int> sent{0};
  std::thread producer([&] {
    for (int i = 0; i < 6; ++i) {
      if (sender.Send(MakeReport(absl::StrCat("b", i), 1)).ok()) ++sent;
    }
  });
  // While the server holds its acks, no more than the capacity can have been taken.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(sent.load(), 2);
  EXPECT_EQ(sender.stats().accepted, 2u);
  server.service().set_hold_acks(false);
  producer.join();
  EXPECT_EQ(sent.load(), 6);
  ASSERT_TRUE(sender.Flush(absl::Seconds(20)).ok());
  EXPECT_EQ(sender.stats().durable, 6u);
  EXPECT_LE(sender.stats().max_buffered, 2u);
}

TEST(TelemetrySenderTest, FlushTimesOutWithoutServerAndCloseUnblocks) {
  std::string dead_address;
  {
    testing::FakeServer gone;  // take a free port, then free it again: nobody listens there
    dead_address = gone.address();
  }
  TelemetrySenderOptions options;
  options.capacity_reports = 1;
  TelemetrySender sender(grpc::CreateChannel(dead_address, grpc::InsecureChannelCredentials()),
                         FastOptions(dead_address), options);
  ASSERT_TRUE(sender.Send(MakeReport("lonely", 1)).ok());
  absl::Status flushed = sender.Flush(absl::Milliseconds(300));
  EXPECT_EQ(flushed.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(flushed.message().find("1 report(s)"), absl::string_view::npos) << flushed;

  // A producer blocked on the full buffer is released by Close().
  std::atomic<bool> done{false};
  absl::Status blocked_result;
  std::thread producer([&] {
    blocked_result = sender.Send(MakeReport("waiting", 1));
    done = true;
  });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(done.load());
  sender.Close();
  producer.join();
  EXPECT_EQ(blocked_result.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sender.Send(MakeReport("after", 1)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_GE(sender.stats().stream_failures, 1u);
}

TEST(TelemetrySenderTest, SendsBearerTokenOnTheStream) {
  testing::FakeServer server;
  ClientOptions client_options = FastOptions(server.address());
  client_options.bearer_token = "s3cret";
  TelemetrySender sender(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()),
                         client_options, TelemetrySenderOptions());
  ASSERT_TRUE(sender.Send(MakeReport("tok", 1)).ok());
  ASSERT_TRUE(sender.Flush(absl::Seconds(20)).ok());
  EXPECT_EQ(server.service().last_authorization(), "Bearer s3cret");
}

}  // namespace
}  // namespace accelsel::client
