// TelemetrySender against an in-process ReportRun service that breaks streams, loses acks and holds acks, and
// against the real server: a tight per-node report rate (its grpc-retry-pushback-ms hint), and its ranged acks.
#include "client/telemetry_sender.h"

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_server.h"
#include "tests/server/test_server.h"

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
  // While the server holds its acks, no more than the capacity can have been taken: wait (bounded) until the
  // producer's third Send is waiting for room.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (sender.stats().blocked_sends == 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(sender.stats().blocked_sends, 1u);  // (not ASSERT: the producer thread must be joined below)
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
  // The sender keeps trying: wait (bounded) until it has seen a stream fail.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (sender.stats().stream_failures == 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_GE(sender.stats().stream_failures, 1u);

  // A producer blocked on the full buffer is released by Close().
  std::atomic<bool> done{false};
  absl::Status blocked_result;
  std::thread producer([&] {
    blocked_result = sender.Send(MakeReport("waiting", 1));
    done = true;
  });
  const absl::Time blocked_by = absl::Now() + absl::Seconds(20);
  while (sender.stats().blocked_sends == 0 && absl::Now() < blocked_by) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(sender.stats().blocked_sends, 1u);  // the producer waits for room, so Close is what releases it
  EXPECT_FALSE(done.load());
  sender.Close();
  producer.join();
  EXPECT_EQ(blocked_result.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sender.Send(MakeReport("after", 1)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TelemetrySenderTest, SendsBearerTokenOnTheStream) {
  testing::FakeServer server;
  ClientOptions client_options = FastOptions(server.address());
  client_options.bearer_token = "s3cret";
  TelemetrySender sender(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()), client_options,
                         TelemetrySenderOptions());
  ASSERT_TRUE(sender.Send(MakeReport("tok", 1)).ok());
  ASSERT_TRUE(sender.Flush(absl::Seconds(20)).ok());
  EXPECT_EQ(server.service().last_authorization(), "Bearer s3cret");
}

// Acks the server sent just before it ended a stream are still taken, even when the reader is slow and the writer
// already found the call over. (Regression: the writer cancelled the call at once, the acks still queued in the
// client were dropped and their reports resent as duplicates: `accelsel import` printed "stored 8, duplicate 2"
// under load.)
TEST(TelemetrySenderTest, AcksQueuedBeforeABreakAreNotLostWhenTheWriterFindsTheCallOver) {
  testing::FakeServer server;
  server.service().set_break_after_acks(3);  // acks r0..r2, reads r3, ends the call UNAVAILABLE
  absl::Notification release_reader;
  std::atomic<int> acks_seen{0};
  TelemetrySenderOptions options;
  options.on_ack = [&](const v1::RunAck&) {
    if (acks_seen.fetch_add(1) == 0) release_reader.WaitForNotificationWithTimeout(absl::Seconds(20));
  };
  TelemetrySender sender(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()),
                         FastOptions(server.address()), options);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(sender.Send(MakeReport(absl::StrCat("r", i), 1)).ok());
  // The reader is held in the first ack's callback; the server has ended the call.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while ((server.service().reports_read() < 4 || acks_seen.load() == 0) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(server.service().reports_read(), 4);
  absl::SleepFor(absl::Milliseconds(200));  // the call's end reaches the client
  // One more report: the writer's Write finds the call over while acks r1, r2 wait unread.
  ASSERT_TRUE(sender.Send(MakeReport("r4", 1)).ok());
  while (sender.stats().writes < 5 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  absl::SleepFor(absl::Milliseconds(200));
  release_reader.Notify();
  ASSERT_TRUE(sender.Flush(absl::Seconds(30)).ok());
  const TelemetrySenderStats st = sender.stats();
  EXPECT_EQ(st.durable, 5u);
  EXPECT_EQ(st.duplicate, 0u) << "an ack the server sent was dropped and its report resent";
  EXPECT_EQ(server.service().stored().size(), 5u);
}

// A refused stream's wait hint: gRPC's grpc-retry-pushback-ms wins over the older retry-after-ms when both come.
TEST(TelemetrySenderTest, PrefersTheRetryPushbackTrailer) {
  testing::FakeServer server;
  server.service().FailNextStreams(1, grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   {{"grpc-retry-pushback-ms", "300"}, {"retry-after-ms", "1"}});
  TelemetrySender sender(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()),
                         FastOptions(server.address()), TelemetrySenderOptions());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(sender.Send(MakeReport("pushback-1", 10)).ok());
  ASSERT_TRUE(sender.Flush(absl::Seconds(30)).ok());
  const TelemetrySenderStats st = sender.stats();
  EXPECT_EQ(st.durable, 1u);
  EXPECT_EQ(st.retry_after_hints, 1u) << st.last_stream_error;
  EXPECT_EQ(st.last_retry_after_ms, 300);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(290));
  EXPECT_EQ(server.service().streams(), 2);
}

// The real server with a tight report rate per node: each stream over it ends RESOURCE_EXHAUSTED with
// "grpc-retry-pushback-ms" (and "retry-after-ms"); the sender waits that long before the next stream instead of
// hammering the server with its (much shorter) reconnect backoff, and every report ends up stored exactly once.
TEST(TelemetrySenderTest, HonoursTheServersRetryAfterHintUnderARateLimit) {
  auto server_options = testing::TestOptions(testing::FreshDir("sender-retry-after"));
  server_options.access.limit_anonymous = true;  // per-node limits without tokens, keyed by peer host
  server_options.access.reports_per_s = 2;
  server_options.access.report_burst = 3;
  auto server = server::Server::Start(server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  {
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = testing::MakeStrategy("vllm");
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE((*server)->core().RegisterStrategy(req, &resp).ok());
  }
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());
  ClientOptions client_options = FastOptions(address);  // reconnect backoff 5..50 ms
  TelemetrySender sender(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), client_options,
                         TelemetrySenderOptions());
  constexpr int kReports = 7;  // 3 from the burst, then 4 at 2 per second: about 2 s
  const absl::Time start = absl::Now();
  for (int i = 0; i < kReports; ++i) {
    ASSERT_TRUE(sender.Send(testing::MakeReport(absl::StrCat("limited-", i), "vllm", 4, 100 + i)).ok());
  }
  ASSERT_TRUE(sender.Flush(absl::Seconds(60)).ok());
  const absl::Duration took = absl::Now() - start;
  const TelemetrySenderStats st = sender.stats();
  EXPECT_EQ(st.durable, static_cast<uint64_t>(kReports));
  EXPECT_EQ(st.duplicate, 0u);
  EXPECT_EQ((*server)->core().store()->RunCount(), static_cast<uint64_t>(kReports));
  EXPECT_GE(st.retry_after_hints, 1u) << st.last_stream_error;
  EXPECT_GT(st.last_retry_after_ms, 0);
  EXPECT_LE(st.last_retry_after_ms, 500) << "one report's worth of tokens at 2 per second";
  EXPECT_GE(took, absl::Milliseconds(1500)) << "4 reports beyond the burst at 2 per second";
  // Each refused stream is followed by a wait of about the hint (~500 ms), so about one refusal per report over
  // the burst. Retrying on the 5..50 ms backoff alone would have been refused dozens of times.
  EXPECT_LE(st.stream_failures, 8u) << "the retry hint was not honoured; hints seen: " << st.retry_after_hints;
  sender.Close();
  (*server)->Shutdown();
}

// The real server ranges its acks for this sender (RunAck.count): one message stands for many reports, yet the
// sender surfaces exactly one ack per report, with that report's own run_id, and a rejection in the middle of a
// run still arrives alone with its reason.
TEST(TelemetrySenderTest, RangedAcksFromTheRealServerSurfaceOncePerReport) {
  auto server = server::Server::Start(testing::TestOptions(testing::FreshDir("sender-ranged")));
  ASSERT_TRUE(server.ok()) << server.status();
  {
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = testing::MakeStrategy("vllm");
    v1::RegisterStrategyResponse resp;
    ASSERT_TRUE((*server)->core().RegisterStrategy(req, &resp).ok());
  }
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());
  AckLog log;
  TelemetrySenderOptions options;
  options.capacity_reports = 4096;
  log.Attach(&options);
  TelemetrySender sender(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), FastOptions(address),
                         options);
  constexpr int kReports = 3000;
  for (int i = 0; i < kReports; ++i) {
    ASSERT_TRUE(sender.Send(testing::MakeReport(absl::StrCat("ranged-", i), "vllm", 4, 100 + i % 50)).ok());
    if (i == kReports / 2) {
      ASSERT_TRUE(sender.Send(testing::MakeReport("ranged-bad", "vllm", 4, -1)).ok());
    }
  }
  ASSERT_TRUE(sender.Flush(absl::Seconds(60)).ok());
  for (int i = 0; i < 100; ++i) {  // resent: duplicates, ranged too
    ASSERT_TRUE(sender.Send(testing::MakeReport(absl::StrCat("ranged-", i), "vllm", 4, 100 + i % 50)).ok());
  }
  ASSERT_TRUE(sender.Flush(absl::Seconds(60)).ok());
  const TelemetrySenderStats st = sender.stats();
  EXPECT_EQ(st.durable, static_cast<uint64_t>(kReports));
  EXPECT_EQ(st.duplicate, 100u);
  EXPECT_EQ(st.rejected, 1u);
  EXPECT_EQ(st.unmatched_acks, 0u);
  EXPECT_LT(st.ack_messages, st.durable / 2) << "acks were not ranged";
  EXPECT_EQ((*server)->core().store()->RunCount(), static_cast<uint64_t>(kReports));
  {
    absl::MutexLock l(&log.mu);
    EXPECT_EQ(log.acks.size(), static_cast<size_t>(kReports + 1));
    for (int i = 0; i < kReports; ++i) {
      ASSERT_EQ(log.acks[absl::StrCat("ranged-", i)], i < 100 ? 2 : 1) << i;
    }
    EXPECT_EQ(log.acks["ranged-bad"], 1);
    ASSERT_EQ(log.rejections.size(), 1u);
    EXPECT_NE(log.rejections["ranged-bad"].find("metrics.e2e_latency_ms"), std::string::npos)
        << log.rejections["ranged-bad"];
  }
  sender.Close();
  (*server)->Shutdown();
}

}  // namespace
}  // namespace accelsel::client
