// TelemetrySender: a writer thread keeps one ReportRun stream open and a reader thread matches acks to the
// buffer; a broken stream is cancelled, joined, and replaced after a backoff, and every unacknowledged
// report is written again (the server dedups by run_id, so a resend is harmless).
#include "client/telemetry_sender.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/ack_ranges.h"

namespace accelsel::client {

using Stream = grpc::ClientReaderWriter<v1::RunReport, v1::RunAck>;

namespace {

// The server's wait hint (sent with RESOURCE_EXHAUSTED by its rate limits): gRPC's "grpc-retry-pushback-ms"
// trailer, else "retry-after-ms" (servers before it); 0 if neither is a positive number.
int64_t RetryAfterMs(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  for (const char* key : {"grpc-retry-pushback-ms", "retry-after-ms"}) {
    auto it = trailers.find(key);
    int64_t ms = 0;
    if (it != trailers.end() && absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms) &&
        ms > 0) {
      return ms;
    }
  }
  return 0;
}

}  // namespace

TelemetrySender::TelemetrySender(std::shared_ptr<grpc::Channel> channel, const ClientOptions& client_options,
                                 TelemetrySenderOptions options)
    : client_options_(client_options),
      options_([&] {
        if (options.capacity_reports == 0) options.capacity_reports = 1;
        return std::move(options);
      }()),
      stub_(v1::AcceleratorSelector::NewStub(std::move(channel))) {
  thread_ = std::thread([this] { Run(); });
}

TelemetrySender::~TelemetrySender() { Close(); }

absl::Status TelemetrySender::Send(v1::RunReport report) {
  absl::MutexLock lock(&mu_);
  if (closing_) return absl::FailedPreconditionError("telemetry sender is closed");
  if (options_.block_when_full) {
    if (pending_.size() >= options_.capacity_reports) {
      ++stats_.blocked_sends;
      while (!closing_ && pending_.size() >= options_.capacity_reports) changed_.Wait(&mu_);
      --stats_.blocked_sends;
    }
    if (closing_) return absl::FailedPreconditionError("telemetry sender is closed");
  } else if (pending_.size() >= options_.capacity_reports) {
    return absl::ResourceExhaustedError(
        absl::StrCat("telemetry buffer full (", options_.capacity_reports, " reports awaiting acknowledgement)"));
  }
  Entry entry;
  entry.report = std::move(report);
  pending_.emplace(next_entry_id_++, std::move(entry));
  ++stats_.accepted;
  stats_.max_buffered = std::max(stats_.max_buffered, pending_.size());
  changed_.SignalAll();
  return absl::OkStatus();
}

absl::Status TelemetrySender::Flush(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  // Also wait for callbacks of acks already matched, so a caller sees every on_ack/on_rejected once Flush is OK.
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_.empty() && callbacks_running_ == 0; };
  while (!done() && !closing_ && absl::Now() < deadline) changed_.WaitWithDeadline(&mu_, deadline);
  if (done()) return absl::OkStatus();
  std::string why =
      closing_ ? "sender closed" : absl::StrCat("not acknowledged within ", absl::FormatDuration(timeout));
  if (!stats_.last_stream_error.empty()) absl::StrAppend(&why, "; last stream error: ", stats_.last_stream_error);
  return absl::DeadlineExceededError(absl::StrCat(pending_.size(), " report(s) ", why));
}

void TelemetrySender::Close() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    if (stream_context_ != nullptr) stream_context_->TryCancel();
    changed_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

TelemetrySenderStats TelemetrySender::stats() const {
  absl::MutexLock lock(&mu_);
  TelemetrySenderStats s = stats_;
  s.buffered = pending_.size();
  return s;
}

void TelemetrySender::Run() {
  int failures_in_a_row = 0;  // streams that ended without a single ack: drives the backoff
  while (true) {
    auto context = std::make_unique<grpc::ClientContext>();
    AddAuthMetadata(client_options_, context.get());
    // One ack per run of consecutive reports with the same result (RunAck.count); a server that does not know the
    // metadata acks each report, which reads the same.
    context->AddMetadata(kAckRangesMetadata, "1");
    {
      absl::MutexLock lock(&mu_);
      while (!closing_ && pending_.empty()) changed_.Wait(&mu_);
      if (closing_) return;
      stream_context_ = context.get();
      in_flight_.clear();
      next_sequence_ = 0;
      write_cursor_ = 0;
      stream_broken_ = false;
      reader_done_ = false;
      acked_on_stream_ = false;
      ++stats_.streams_opened;
    }
    std::unique_ptr<Stream> stream = stub_->ReportRun(context.get());
    std::thread reader([this, s = stream.get()] { ReadLoop(s); });
    WriteLoop(stream.get());
    // The writer stops when the sender closes, a Write failed (the call is over) or the reader saw the end. The
    // server may have sent acks just before it ended the call that the reader has not taken yet: cancelling now
    // would drop them, and their reports would be resent and counted as duplicates. So let the reader drain the
    // call first (bounded by the call deadline, in case the transport never reports the end). Cancel only a call
    // that has not ended: cancelling an ended one replaces the server's status (and its retry hint trailers)
    // with CANCELLED.
    bool ended = false;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time drain_until = absl::Now() + absl::Milliseconds(client_options_.deadline_ms);
      while (!closing_ && !reader_done_ && absl::Now() < drain_until) changed_.WaitWithDeadline(&mu_, drain_until);
      ended = reader_done_;
    }
    if (!ended) context->TryCancel();
    reader.join();
    const grpc::Status status = stream->Finish();
    absl::Duration backoff;
    {
      absl::MutexLock lock(&mu_);
      stream_context_ = nullptr;
      if (closing_) return;
      ++stats_.stream_failures;
      stats_.last_stream_error = status.ok() ? "server closed the stream" : FromGrpcStatus(status).ToString();
      failures_in_a_row = acked_on_stream_ ? 0 : failures_in_a_row + 1;
      backoff = RetryBackoff(client_options_, failures_in_a_row);
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        if (const int64_t hint_ms = RetryAfterMs(*context); hint_ms > 0) {
          ++stats_.retry_after_hints;
          stats_.last_retry_after_ms = hint_ms;
          backoff = std::max(backoff, std::min(absl::Milliseconds(hint_ms), options_.max_retry_after));
        }
      }
      const absl::Time wake = absl::Now() + backoff;
      while (!closing_ && absl::Now() < wake) changed_.WaitWithDeadline(&mu_, wake);
      if (closing_) return;
    }
  }
}

void TelemetrySender::WriteLoop(Stream* stream) {
  while (true) {
    v1::RunReport report;
    {
      absl::MutexLock lock(&mu_);
      auto next = pending_.lower_bound(write_cursor_);
      while (!closing_ && !stream_broken_ && next == pending_.end()) {
        changed_.Wait(&mu_);
        next = pending_.lower_bound(write_cursor_);
      }
      if (closing_ || stream_broken_) return;
      Entry& entry = next->second;
      if (entry.ever_written) ++stats_.resent;
      entry.ever_written = true;
      ++stats_.writes;
      in_flight_[next_sequence_++] = next->first;
      write_cursor_ = next->first + 1;
      report = entry.report;
    }
    if (!stream->Write(report)) {
      absl::MutexLock lock(&mu_);
      stream_broken_ = true;
      changed_.SignalAll();
      return;
    }
  }
}

std::map<uint64_t, TelemetrySender::Entry>::iterator TelemetrySender::MatchAck(const v1::RunAck& ack, uint64_t i) {
  if (i > 0) {  // a later report of a ranged ack: only the first report's run_id travels, so match by sequence
    auto seq = in_flight_.find(ack.sequence() + i);
    if (seq == in_flight_.end()) return pending_.end();
    auto it = pending_.find(seq->second);
    in_flight_.erase(seq);
    return it;
  }
  if (auto seq = in_flight_.find(ack.sequence()); seq != in_flight_.end()) {
    auto it = pending_.find(seq->second);
    if (it != pending_.end() && it->second.report.run_id() == ack.run_id()) {
      in_flight_.erase(seq);
      return it;
    }
  }
  // A server that numbers acks differently: fall back to a written entry with this run_id.
  for (auto seq = in_flight_.begin(); seq != in_flight_.end(); ++seq) {
    auto it = pending_.find(seq->second);
    if (it != pending_.end() && it->second.report.run_id() == ack.run_id()) {
      in_flight_.erase(seq);
      return it;
    }
  }
  return pending_.end();
}

void TelemetrySender::ReadLoop(Stream* stream) {
  v1::RunAck ack;
  std::vector<v1::RunAck> matched;  // the reports this message acknowledged, one ack each (a range expanded)
  while (stream->Read(&ack)) {
    matched.clear();
    {
      absl::MutexLock lock(&mu_);
      ++stats_.ack_messages;
      // A range can cover no more reports than are in flight on this stream: the rest (only a broken or hostile
      // server would send them) are counted unmatched at once, so a huge `count` cannot hold the lock for long.
      const uint64_t covered = AcksCovered(ack);
      const uint64_t walk = std::min<uint64_t>(covered, std::max<size_t>(in_flight_.size(), 1));
      stats_.unmatched_acks += covered - walk;
      for (uint64_t i = 0; i < walk; ++i) {
        auto it = MatchAck(ack, i);
        if (it == pending_.end()) {
          ++stats_.unmatched_acks;
          continue;
        }
        v1::RunAck& one = matched.emplace_back();
        one.set_run_id(it->second.report.run_id());
        one.set_result(ack.result());
        one.set_reason(ack.reason());
        one.set_sequence(ack.sequence() + i);
        pending_.erase(it);
        acked_on_stream_ = true;
        switch (ack.result()) {
          case v1::RunAck::RESULT_DURABLE: ++stats_.durable; break;
          case v1::RunAck::RESULT_DUPLICATE: ++stats_.duplicate; break;
          default:  // REJECTED, or a result this client does not know: not stored, so surface it
            ++stats_.rejected;
            break;
        }
      }
      if (matched.empty()) continue;
      ++callbacks_running_;
      changed_.SignalAll();
    }
    const bool stored = ack.result() == v1::RunAck::RESULT_DURABLE || ack.result() == v1::RunAck::RESULT_DUPLICATE;
    for (const v1::RunAck& one : matched) {
      if (options_.on_ack) options_.on_ack(one);
      if (!stored && options_.on_rejected) options_.on_rejected(one.run_id(), one.reason());
    }
    absl::MutexLock lock(&mu_);
    --callbacks_running_;
    changed_.SignalAll();
  }
  absl::MutexLock lock(&mu_);
  stream_broken_ = true;
  reader_done_ = true;
  changed_.SignalAll();
}

}  // namespace accelsel::client
