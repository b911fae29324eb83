// Unit tests of AckQueue (server/ack_queue.h): one ack per report without ranges; with ranges, consecutive acks of
// the same result merge into one with a count, rejections never merge; PopFront and Clear account for every report.
#include "server/ack_queue.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace accelsel::server {
namespace {

constexpr auto kDurable = v1::RunAck::RESULT_DURABLE;
constexpr auto kDuplicate = v1::RunAck::RESULT_DUPLICATE;
constexpr auto kRejected = v1::RunAck::RESULT_REJECTED;

std::vector<v1::RunAck> Drain(AckQueue& q, size_t* reports) {
  std::vector<v1::RunAck> out;
  *reports = 0;
  while (!q.empty()) {
    v1::RunAck ack;
    *reports += q.PopFront(&ack);
    out.push_back(std::move(ack));
  }
  return out;
}

TEST(AckQueueTest, WithoutRangesEveryReportGetsItsOwnAckInOrder) {
  AckQueue q(/*ranges=*/false);
  EXPECT_TRUE(q.empty());
  q.Add(0, kDurable, "r0");
  q.Add(1, kDurable, "r1");
  q.Add(2, kRejected, "r2", "metrics: missing");
  q.Add(3, kDuplicate, "r3");
  size_t reports = 0;
  const auto acks = Drain(q, &reports);
  EXPECT_EQ(reports, 4u);
  ASSERT_EQ(acks.size(), 4u);
  for (size_t i = 0; i < acks.size(); ++i) {
    EXPECT_EQ(acks[i].sequence(), i);
    EXPECT_EQ(acks[i].run_id(), "r" + std::to_string(i));
    EXPECT_EQ(acks[i].count(), 0u);  // plain acks carry no count (a client that did not ask may not know it)
  }
  EXPECT_EQ(acks[0].result(), kDurable);
  EXPECT_EQ(acks[2].result(), kRejected);
  EXPECT_EQ(acks[2].reason(), "metrics: missing");
  EXPECT_TRUE(acks[1].reason().empty());
  EXPECT_EQ(acks[3].result(), kDuplicate);
}

TEST(AckQueueTest, WithRangesConsecutiveSameResultsMergeAndAnythingElseStartsANewAck) {
  AckQueue q(/*ranges=*/true);
  q.Add(0, kDurable, "r0");
  q.Add(1, kDurable, "r1");
  q.Add(2, kDurable, "r2");
  q.Add(3, kDuplicate, "r3");  // result changes
  q.Add(4, kDuplicate, "r4");
  q.Add(6, kDuplicate, "r6");  // gap in the sequence
  q.Add(7, kRejected, "r7", "a");
  q.Add(8, kRejected, "r8", "b");  // rejections stand alone, each with its reason
  q.Add(9, kDurable, "r9");
  size_t reports = 0;
  const auto acks = Drain(q, &reports);
  EXPECT_EQ(reports, 9u);
  ASSERT_EQ(acks.size(), 6u);
  struct Want {
    uint64_t sequence;
    uint32_t count;
    v1::RunAck::Result result;
    const char* run_id;
  };
  const Want want[] = {{0, 3, kDurable, "r0"},  {3, 2, kDuplicate, "r3"}, {6, 1, kDuplicate, "r6"},
                       {7, 1, kRejected, "r7"}, {8, 1, kRejected, "r8"},  {9, 1, kDurable, "r9"}};
  for (size_t i = 0; i < acks.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(acks[i].sequence(), want[i].sequence);
    EXPECT_EQ(acks[i].count(), want[i].count);  // every ack on a ranged stream says how many it stands for
    EXPECT_EQ(acks[i].result(), want[i].result);
    EXPECT_EQ(acks[i].run_id(), want[i].run_id);  // a range names its first report
  }
  EXPECT_EQ(acks[3].reason(), "a");
  EXPECT_EQ(acks[4].reason(), "b");
}

TEST(AckQueueTest, AnAckAlreadyPoppedIsNotExtended) {
  AckQueue q(/*ranges=*/true);
  q.Add(0, kDurable, "r0");
  v1::RunAck first;
  EXPECT_EQ(q.PopFront(&first), 1u);
  EXPECT_TRUE(q.empty());
  q.Add(1, kDurable, "r1");  // consecutive, but its predecessor has left: a new ack
  v1::RunAck second;
  EXPECT_EQ(q.PopFront(&second), 1u);
  EXPECT_EQ(first.count(), 1u);
  EXPECT_EQ(second.sequence(), 1u);
  EXPECT_EQ(second.count(), 1u);
}

TEST(AckQueueTest, ClearDropsEverythingAndReturnsTheReportsStoodFor) {
  AckQueue q(/*ranges=*/true);
  for (uint64_t s = 0; s < 5; ++s) q.Add(s, kDurable, "r");
  q.Add(5, kRejected, "x", "why");
  q.Add(6, kDuplicate, "y");
  v1::RunAck ack;
  EXPECT_EQ(q.PopFront(&ack), 5u);
  EXPECT_EQ(q.Clear(), 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.Clear(), 0u);
  q.Add(7, kDurable, "z");  // usable again after Clear
  EXPECT_EQ(q.PopFront(&ack), 1u);
  EXPECT_EQ(ack.sequence(), 7u);
}

}  // namespace
}  // namespace accelsel::server
