// AckQueue: the acks one ReportRun stream has yet to write. A client that sends the metadata
// `accelsel-ack-ranges: 1` lets one RunAck stand for a run of consecutive sequences with the same result
// (`count` > 1); the queue then extends its last ack instead of queueing another message, so the acks of a whole
// committed batch usually leave in one write. Without the metadata every report gets its own ack.
//
// Thread safety: none of its own. A ReportRun reactor (server/services.cc) owns one and declares it
// ABSL_GUARDED_BY(its mu_), so the compiler checks that every call happens under that stream's lock; the group
// commit's completions and the stream's write callbacks then reach it from different threads one at a time.
#ifndef ACCELSEL_SERVER_ACK_QUEUE_H_
#define ACCELSEL_SERVER_ACK_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "absl/strings/string_view.h"
#include "accelsel/v1/accelsel.pb.h"
#include "grpcpp/server_context.h"
#include "proto/ack_ranges.h"

namespace accelsel::server {

// True when the stream's client asked for ranged acks (metadata kAckRangesMetadata: 1).
inline bool WantsAckRanges(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(kAckRangesMetadata);
  return it != md.end() && absl::string_view(it->second.data(), it->second.size()) == "1";
}

class AckQueue {
 public:
  explicit AckQueue(bool ranges = false) : ranges_(ranges) {}

  // Queues the ack of report `sequence`. A REJECTED ack always stands alone (it carries its own reason).
  void Add(uint64_t sequence, v1::RunAck::Result result, const std::string& run_id, std::string reason = {}) {
    ++reports_;
    if (ranges_ && result != v1::RunAck::RESULT_REJECTED && !acks_.empty()) {
      v1::RunAck& last = acks_.back();
      if (last.result() == result && last.sequence() + last.count() == sequence) {
        last.set_count(last.count() + 1);
        return;
      }
    }
    v1::RunAck& ack = acks_.emplace_back();
    ack.set_run_id(run_id);
    ack.set_result(result);
    ack.set_sequence(sequence);
    if (!reason.empty()) ack.set_reason(std::move(reason));
    if (ranges_) ack.set_count(1);
  }

  bool empty() const { return acks_.empty(); }

  // Moves the front ack into *out (a protobuf move swaps, so *out's previous strings are freed with the popped
  // element); returns how many reports it stands for.
  size_t PopFront(v1::RunAck* out) {
    *out = std::move(acks_.front());
    acks_.pop_front();
    const size_t n = AcksCovered(*out);
    reports_ -= n;
    return n;
  }

  // Drops every queued ack; returns how many reports they stood for.
  size_t Clear() {
    const size_t n = reports_;
    acks_.clear();
    reports_ = 0;
    return n;
  }

 private:
  const bool ranges_;
  std::deque<v1::RunAck> acks_;
  size_t reports_ = 0;  // reports the queued acks stand for
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_ACK_QUEUE_H_
