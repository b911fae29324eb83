// TelemetrySender: streams RunReports to accelsel over one long-lived ReportRun stream, with a bounded buffer
// (backpressure instead of unbounded memory) and resending of whatever was not acknowledged after a break.
#ifndef ACCELSEL_CLIENT_TELEMETRY_SENDER_H_
#define ACCELSEL_CLIENT_TELEMETRY_SENDER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "client/client.h"
#include "grpcpp/grpcpp.h"

namespace accelsel::client {

struct TelemetrySenderOptions {
  // Most reports held at once, counting both unsent and sent-but-unacknowledged ones. Must be >= 1.
  // A report leaves the buffer only when the server acknowledges it (durable, duplicate or rejected).
  size_t capacity_reports = 1024;
  // When the buffer is full: true = Send() waits for room; false = Send() returns RESOURCE_EXHAUSTED.
  bool block_when_full = true;
  // Called once per acknowledged report (a ranged ack, RunAck.count > 1, arrives here as one ack per report, each
  // with its own run_id and sequence), on the sender's reader thread with no lock held. Must not call
  // Close() or destroy the sender; may call Send() only when block_when_full is false.
  std::function<void(const v1::RunAck&)> on_ack;
  // Called for REJECTED acks (after on_ack), same thread rules: run_id and the server's reason.
  std::function<void(const std::string& run_id, const std::string& reason)> on_rejected;
  // A stream the server ended RESOURCE_EXHAUSTED (a rate limit) carries the trailer "grpc-retry-pushback-ms: N"
  // (read first) or "retry-after-ms: N" (servers before it): the next stream opens no sooner than N ms later (and
  // no sooner than the usual backoff). N is capped at this, so a broken or hostile server cannot park the sender
  // for hours.
  absl::Duration max_retry_after = absl::Seconds(60);
};

struct TelemetrySenderStats {
  uint64_t accepted = 0;        // reports taken by Send()
  uint64_t durable = 0;         // acks: RESULT_DURABLE
  uint64_t duplicate = 0;       // acks: RESULT_DUPLICATE
  uint64_t rejected = 0;        // acks: RESULT_REJECTED
  uint64_t unmatched_acks = 0;  // reports acked (alone or inside a range) that name no buffered report (ignored)
  uint64_t ack_messages = 0;    // RunAck messages read; below durable + duplicate + rejected when acks are ranged
  uint64_t writes = 0;          // reports written to a stream, resends included
  uint64_t resent = 0;          // writes of a report already written on an earlier, broken stream
  uint64_t streams_opened = 0;
  uint64_t stream_failures = 0;     // streams that ended (error or server close) while the sender was open
  uint64_t retry_after_hints = 0;   // streams ended RESOURCE_EXHAUSTED with a wait hint (trailer) that was honoured
  int64_t last_retry_after_ms = 0;  // the last such hint, as sent by the server (before the cap)
  size_t buffered = 0;              // reports in the buffer now
  size_t max_buffered = 0;          // high-water mark, never above capacity_reports
  size_t blocked_sends = 0;         // Send calls waiting for room now (block_when_full)
  std::string last_stream_error;
};

// Thread safety: Send, Flush, Close and stats may be called from any number of threads at once (Close also
// concurrently with a blocked Send or Flush, which then return). mu_ guards the buffer, the stream state and the
// statistics; changed_ signals every change of them. The sender owns one background thread (Run: opens streams and
// writes) plus, while a stream is open, one reader thread (ReadLoop: matches acks); neither holds mu_ across a gRPC
// call, and the on_ack/on_rejected callbacks run on the reader thread with no lock held. Ownership: the sender owns
// its buffered reports (Send takes them by value), its threads and its stub; it shares `channel` with other
// users. The destructor calls Close, so it must not run on one of the sender's own threads (i.e. in a callback).
class TelemetrySender {
 public:
  // The channel is shared with other users; `client_options` supplies the bearer token and the reconnect
  // backoff (initial_backoff_ms, max_backoff_ms). Its deadline does not apply: the stream is long-lived.
  TelemetrySender(std::shared_ptr<grpc::Channel> channel, const ClientOptions& client_options,
                  TelemetrySenderOptions options);
  ~TelemetrySender();  // Close()

  TelemetrySender(const TelemetrySender&) = delete;
  TelemetrySender& operator=(const TelemetrySender&) = delete;

  // Buffers `report` for sending. Full buffer: waits or RESOURCE_EXHAUSTED (see options).
  // FAILED_PRECONDITION after Close().
  absl::Status Send(v1::RunReport report) ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until every report accepted so far is acknowledged and its callbacks have returned.
  // DEADLINE_EXCEEDED (with the number still
  // unacknowledged and the last stream error) when `timeout` passes first.
  absl::Status Flush(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // Cancels the stream and stops the threads. Reports not yet acknowledged are dropped: Flush() first.
  // Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  TelemetrySenderStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    v1::RunReport report;
    bool ever_written = false;  // on some stream: a further write is a resend
  };

  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes unwritten entries until the stream breaks or the sender closes.
  void WriteLoop(grpc::ClientReaderWriter<v1::RunReport, v1::RunAck>* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // Matches acks to entries until the stream ends; then marks it broken.
  void ReadLoop(grpc::ClientReaderWriter<v1::RunReport, v1::RunAck>* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // The buffered entry that report `i` of `ack` acknowledges (0 for a plain ack; a ranged ack stands for
  // ack.count() reports), taken out of in_flight_: by stream sequence, and for i = 0 with the ack's run_id checked
  // (else any written entry with that run_id); pending_.end() if none.
  std::map<uint64_t, Entry>::iterator MatchAck(const v1::RunAck& ack, uint64_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ClientOptions client_options_;
  const TelemetrySenderOptions options_;
  std::unique_ptr<v1::AcceleratorSelector::Stub> stub_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;                                   // any change to the buffer or the stream state
  std::map<uint64_t, Entry> pending_ ABSL_GUARDED_BY(mu_);  // by entry id = Send order
  uint64_t next_entry_id_ ABSL_GUARDED_BY(mu_) = 0;
  // Current stream: entries at or after write_cursor_ that are not written yet go out next.
  uint64_t write_cursor_ ABSL_GUARDED_BY(mu_) = 0;
  std::unordered_map<uint64_t, uint64_t> in_flight_ ABSL_GUARDED_BY(mu_);  // stream sequence -> entry id
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  bool reader_done_ ABSL_GUARDED_BY(mu_) = false;  // the current stream's reader has seen its end
  bool acked_on_stream_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;  // for Close() to cancel
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  int callbacks_running_ ABSL_GUARDED_BY(mu_) = 0;  // acks matched whose callbacks have not returned yet
  TelemetrySenderStats stats_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;
};

}  // namespace accelsel::client

#endif  // ACCELSEL_CLIENT_TELEMETRY_SENDER_H_
