// Callback handlers. Unary calls run their (CPU-only, non-blocking) work inline; ReportRun hands reports to the
// group commit and acknowledges from its completion, so no handler ever sleeps or waits on disk.
#include "server/services.h"

#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "grpcpp/alarm.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "server/ack_queue.h"
#include "server/grpc_status.h"
#include "server/validate.h"

namespace accelsel::server {
namespace {

// Parses bytes gRPC handed over unparsed. False when they are not a valid `Message`.
bool ParseBytes(const grpc::ByteBuffer& bytes, google::protobuf::Message* out) {
  // ProtoBufferReader only reads through the pointer (it takes a non-const one for gRPC's own Deserialize).
  grpc::ProtoBufferReader reader(const_cast<grpc::ByteBuffer*>(&bytes));
  return reader.status().ok() && out->ParseFromZeroCopyStream(&reader);
}

// INVALID_ARGUMENT "<field><where>: the bytes did not parse as ...", naming `field` in its details.
absl::Status NotParsed(absl::string_view field, absl::string_view where, const grpc::ByteBuffer& bytes,
                       const google::protobuf::Message& as) {
  const std::string rule =
      absl::StrCat("the bytes did not parse as ", as.GetDescriptor()->full_name(), " (", bytes.Length(), " bytes)");
  return WithFieldViolation(absl::InvalidArgumentError(absl::StrCat(field, where, ": ", rule)), field, rule);
}

template <typename Message>
grpc::Status SerializeTo(const Message& message, grpc::ByteBuffer* out) {
  bool own_buffer = false;
  return grpc::SerializationTraits<Message>::Serialize(message, out, &own_buffer);
}

// One call's request and response. On a protobuf Arena, freed in one go when the call's handler returns: a
// SelectAccelerator answer is ~30 nested messages and ~150 strings, and on the heap their allocation and
// destruction cost more server CPU than the ranking's own code (docs/BENCHMARKS.md). Not under TSan: Debian's
// uninstrumented libprotobuf crashes there inside ThreadSafeArena (SEGV in AllocateAlignedWithCleanup), while the
// same code is clean under ASan + UBSan and in the normal build; TSan builds use heap messages.
template <typename Request, typename Response>
class CallMessages {
 public:
#if defined(__SANITIZE_THREAD__)
  CallMessages() : request_(std::make_unique<Request>()), response_(std::make_unique<Response>()) {}
  Request* request() { return request_.get(); }
  Response* response() { return response_.get(); }

 private:
  std::unique_ptr<Request> request_;
  std::unique_ptr<Response> response_;
#else
  CallMessages()
      : arena_(Options()),
        request_(google::protobuf::Arena::CreateMessage<Request>(&arena_)),
        response_(google::protobuf::Arena::CreateMessage<Response>(&arena_)) {}
  Request* request() { return request_; }
  Response* response() { return response_; }

 private:
  static google::protobuf::ArenaOptions Options() {
    google::protobuf::ArenaOptions o;
    o.start_block_size = 16 << 10;  // a typical request + response in one block
    return o;
  }
  google::protobuf::Arena arena_;
  Request* request_;
  Response* response_;
#endif
};

// The one wrapper every unary RPC goes through: admit (authenticate, authorise, rate-limit), parse the request,
// time it, run it, count it, serialize the answer, finish it. `fn(const Request&, Response*)` returns the status.
template <typename Request, typename Response, typename Fn>
grpc::ServerUnaryReactor* Unary(ServiceCore* core, AccessControl* access, grpc::CallbackServerContext* ctx,
                                Method method, const grpc::ByteBuffer* request_bytes, grpc::ByteBuffer* response_bytes,
                                Fn&& fn) {
  RpcTimer timer(core->metrics(), method);
  Principal who;
  grpc::Status status = ToGrpc(access->Admit(ctx, method, &who));
  if (status.ok()) {
    CallMessages<Request, Response> m;
    if (!ParseBytes(*request_bytes, m.request())) {
      status = ToGrpc(NotParsed("request", "", *request_bytes, *m.request()));
    } else {
      // fn may change the request (e.g. drop unknown fields); it may also take the caller.
      if constexpr (std::is_invocable_v<Fn, Request&, Response*, const Principal&>) {
        status = ToGrpc(fn(*m.request(), m.response(), who));
      } else {
        status = ToGrpc(fn(*m.request(), m.response()));
      }
      if (status.ok()) status = SerializeTo(*m.response(), response_bytes);
    }
  }
  timer.Finish(status.error_code());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// Unary calls that block (training) run as a job on an admin worker of the core's executor (server/executor.h), never
// on a gRPC callback thread. The request is parsed here and handed to the job (which may outlive the call when the
// server-side deadline passes first); the job fills a response of its own; whichever comes first — the job or the
// server-side deadline (options.admin_call_deadline) — finishes the call, so the call's own response bytes are only
// touched while it lives. `fn(const Request&, Response*)` returns the status.
template <typename Request, typename Response, typename Fn>
grpc::ServerUnaryReactor* BlockingUnary(ServiceCore* core, AccessControl* access, grpc::CallbackServerContext* ctx,
                                        Method method, const grpc::ByteBuffer* request_bytes,
                                        grpc::ByteBuffer* response_bytes, Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Principal who;
  grpc::Status admitted = ToGrpc(access->Admit(ctx, method, &who));
  Request request;
  if (admitted.ok() && !ParseBytes(*request_bytes, &request)) {
    admitted = ToGrpc(NotParsed("request", "", *request_bytes, request));
  }
  if (!admitted.ok()) {
    RpcTimer(core->metrics(), method).Finish(admitted.error_code());
    reactor->Finish(admitted);
    return reactor;
  }
  // The job may outlive the call (deadline): it holds a worker slot so that shutdown waits for it.
  if (!core->BeginWorker()) {
    const grpc::Status refused = ToGrpc(absl::UnavailableError("server is shutting down"));
    RpcTimer(core->metrics(), method).Finish(refused.error_code());
    reactor->Finish(refused);
    return reactor;
  }
  struct Race {
    absl::Mutex mu;
    bool finished ABSL_GUARDED_BY(mu) = false;
  };
  auto race = std::make_shared<Race>();
  auto timer = std::make_shared<RpcTimer>(core->metrics(), method);
  // The job owns the alarm (the alarm's callback holds only `race`, so nothing owns itself).
  auto alarm = std::make_unique<grpc::Alarm>();
  const absl::Duration deadline = core->options().admin_call_deadline;
  if (deadline > absl::ZeroDuration()) {
    alarm->Set(absl::ToChronoTime(absl::Now() + deadline), [race, timer, reactor, deadline](bool fired) {
      if (!fired) return;  // cancelled: the job finished first
      {
        absl::MutexLock lock(&race->mu);
        if (race->finished) return;
        race->finished = true;
      }
      timer->Finish(grpc::StatusCode::DEADLINE_EXCEEDED);
      reactor->Finish(
          ToGrpc(absl::DeadlineExceededError(absl::StrCat("server-side deadline of ", absl::FormatDuration(deadline),
                                                          " passed; the operation continues in the background"))));
    });
  }
  Executor::Job job = [core, race, timer, reactor, response_bytes, request = std::move(request),
                       alarm = std::move(alarm), fn = std::move(fn)]() mutable {
    Response local;
    grpc::Status status = ToGrpc(fn(request, &local));
    alarm->Cancel();
    bool finish = false;
    {
      absl::MutexLock lock(&race->mu);
      if (!race->finished) {
        race->finished = true;
        finish = true;
        if (status.ok()) status = SerializeTo(local, response_bytes);
      }
    }
    if (finish) {
      timer->Finish(status.error_code());
      reactor->Finish(status);
    }
    core->EndWorker();  // last touch of the core and the call
  };
  if (!core->executor().Submit(std::move(job))) {
    // Shutting down, or too many admin calls already waiting. The job and its alarm are gone (cancelled), but the
    // alarm may have finished the call first.
    bool finish = false;
    {
      absl::MutexLock lock(&race->mu);
      finish = !race->finished;
      race->finished = true;
    }
    if (finish) {
      const grpc::Status refused = ToGrpc(
          absl::UnavailableError("too many admin calls are waiting, or the server is shutting down; retry later"));
      timer->Finish(refused.error_code());
      reactor->Finish(refused);
    }
    core->EndWorker();
  }
  return reactor;
}

// Calls that change the replicated operator state (server/cluster_settings.h): in cluster mode they also write to
// NATS, a network round trip that may wait for a reconnection, so there they run as BlockingUnary; otherwise as Unary.
template <typename Request, typename Response, typename Fn>
grpc::ServerUnaryReactor* SettingsUnary(ServiceCore* core, AccessControl* access, grpc::CallbackServerContext* ctx,
                                        Method method, const grpc::ByteBuffer* request_bytes,
                                        grpc::ByteBuffer* response_bytes, Fn fn) {
  if (core->cluster_settings() != nullptr) {
    return BlockingUnary<Request, Response>(core, access, ctx, method, request_bytes, response_bytes, std::move(fn));
  }
  return Unary<Request, Response>(core, access, ctx, method, request_bytes, response_bytes, fn);
}

// ReportRun: reads reports, validates each, submits valid ones to the group commit and writes one ack per report,
// or, when the client asked for ranged acks (server/ack_queue.h), one ack per run of consecutive reports with the
// same result: while one ack write is outstanding, the acks of later commits gather into the next one.
// At most `stream_window` reports are in flight; beyond that the next read is not started (backpressure).
// The stream ends OK when the client half-closes and every ack is written; UNAVAILABLE if storage failed (reports
// not acknowledged must be resent).
//
// Per-report costs are kept off the path: report messages are recycled (a cleared message keeps its nested
// messages and string capacity, so parsing the next report allocates almost nothing), the group commit hands a
// stream all its reports of a batch in one call. (Acks are written without gRPC's buffer hint: a hinted write
// can wait for a flush that never comes while it is the one write outstanding.)
//
// Locking: state lives under mu_. gRPC operations (StartRead/StartWrite/Finish) are decided under the lock but
// issued after releasing it, because gRPC may run a completion inline; Finish is always the last touch of `this`.
//
// Ending: once the input is over (half-close, cancellation, a failed commit, a bad report) the call finishes as soon
// as every report read is answered and no write is outstanding, even with a read outstanding: gRPC then ends that
// read (OnReadDone with ok = false, or a report that arrived just before, dropped unacknowledged) and runs OnDone only
// after that OnReadDone returned. Waiting for the read instead would leave a client that waits for its acks without
// its status until it sent again. Only a read decided but not yet issued (StartRead after Finish is not allowed, and
// the call could be done and the reactor deleted by then) holds the finish back, until its issuer is done with it.
class ReportRunReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>, public IngestSink {
 public:
  ReportRunReactor(ServiceCore* core, AccessControl* access, grpc::CallbackServerContext* ctx)
      : core_(core),
        access_(access),
        ctx_(ctx),
        timer_(core->metrics(), Method::kReportRun),
        acks_(WantsAckRanges(*ctx)) {
    // The reactor outlives its call's Finish (OnDone comes later, on a gRPC thread): it holds a worker slot of the
    // core until OnDone, so the server's shutdown waits for it before the core and access control go away.
    holds_worker_slot_ = core_->BeginWorker();
    // Admission happens once per stream: identity, role and the node's stream slots.
    absl::Status admitted = holds_worker_slot_ ? access_->Admit(ctx_, Method::kReportRun, &principal_)
                                               : absl::UnavailableError("server is shutting down");
    if (admitted.ok()) {
      admitted = access_->AcquireStream(ctx_, principal_);
      holds_stream_slot_ = admitted.ok();
    }
    if (!admitted.ok()) {
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        finished_ = true;
      }
      const grpc::Status refused = ToGrpc(admitted);
      timer_.Finish(refused.error_code());
      Finish(refused);
      return;
    }
    {
      // Publishes principal_ and holds_stream_slot_ to the callbacks, which run on other threads and lock mu_
      // first (gRPC orders them too, but in code TSan cannot see).
      absl::MutexLock lock(&mu_);
      reading_ = true;
    }
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    Actions a;
    if (!ok) {
      {
        absl::MutexLock lock(&mu_);
        reads_done_ = true;
        reading_ = false;
        a = NextLocked();
      }
      Run(this, a);
      return;
    }
    std::unique_ptr<v1::RunReport> report;
    std::unique_ptr<ConvertedRun> converted;  // null when none is spare (made if the report goes to the store)
    grpc::ByteBuffer bytes;
    uint64_t seq = 0;
    {
      absl::MutexLock lock(&mu_);  // orders this callback after the one that started the read (another thread)
      TakeIncomingLocked(&bytes);  // leaves incoming_ empty for the next read; none starts while reading_
      report = TakeSpareLocked();
      if (!spare_converted_.empty()) {
        converted = std::move(spare_converted_.back());
        spare_converted_.pop_back();
      }
      seq = next_sequence_++;
    }
    // Bytes that are not a RunReport end the stream INVALID_ARGUMENT once the reports before them are acknowledged:
    // the client learns that this report and the ones after it were not read, and resends them.
    // Over the node's report rate: end the stream RESOURCE_EXHAUSTED (with the retry hint); this report and any
    // still unacknowledged are not stored, the client resends them after the hint.
    //
    // reading_ stays true until this report is prepared and handed to the group commit: otherwise another thread
    // (an ack written, a write stored) could start the next read in between, and report N+1 would be prepared
    // before report N — e.g. rejected as an unknown strategy whose definition report N carries.
    const bool parsed = ParseBytes(bytes, report.get());
    const absl::Status admitted = parsed ? access_->AdmitReports(ctx_, principal_, 1)
                                         : NotParsed("report", absl::StrCat(" at sequence ", seq), bytes, *report);
    if (!parsed) core_->metrics()->RunRejected("report");
    bool ending = false;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || !final_status_.ok()) {  // stream is ending: not acknowledged, the client resends
        reading_ = false;
        RecycleLocked(std::move(report));
        ending = true;
        a = NextLocked();
      } else if (!admitted.ok()) {
        reading_ = false;
        final_status_ = ToGrpc(admitted);
        RecycleLocked(std::move(report));
        a = NextLocked();
      } else {
        ++in_flight_;  // counted until its ack is written (or dropped)
      }
    }
    if (ending || !admitted.ok()) {
      Run(this, a);
      return;
    }
    // Fields this server does not know are dropped before anything is stored: they would otherwise be kept with
    // every stored run (a report may carry up to max_report_bytes of them).
    if (StripUnknownFields(report.get())) core_->metrics()->UnknownFieldsDropped();
    // A node speaks only for itself: its reports carry the node id of its token, whatever they claim.
    if (principal_.authenticated && principal_.role == Role::kNode) report->set_node_id(principal_.node_id);
    std::string reason;
    absl::Status st =
        core_->PrepareReport(report.get(), &reason, /*may_create_strategy=*/principal_.role == Role::kOperator);
    if (absl::IsUnavailable(st)) {
      // Not the report's fault (cluster mode: its new strategy could not be replicated): no ack, and the stream
      // ends UNAVAILABLE once the reports before it are answered, as after a failed store write; the client resends.
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        if (final_status_.ok()) final_status_ = ToGrpc(st);
        --in_flight_;  // never acknowledged
        RecycleLocked(std::move(report));
        a = NextLocked();
      }
      Run(this, a);
      return;
    }
    if (!st.ok()) {
      core_->metrics()->RunRejected(reason);
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        acks_.Add(seq, v1::RunAck::RESULT_REJECTED, report->run_id(), std::string(st.message()));
        RecycleLocked(std::move(report));
        a = NextLocked();
      }
      Run(this, a);
      return;
    }
    core_->Ingest(this, std::move(report), seq, std::move(converted));
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      a = NextLocked();
    }
    Run(this, a);
  }

  void OnWriteDone(bool ok) override {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      in_flight_ -= outgoing_reports_;
      if (!ok) broken_ = true;
      a = NextLocked();
    }
    Run(this, a);
  }

  void OnCancel() override {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      broken_ = true;
      a = NextLocked();
    }
    Run(this, a);
  }

  void OnDone() override {
    // gRPC runs OnDone after every other callback has returned (its own refcount). Taking mu_ once also makes that
    // order visible to TSan, which cannot see inside libgrpc++: the callbacks' writes all happened under mu_.
    { absl::MutexLock lock(&mu_); }
    if (holds_stream_slot_) access_->ReleaseStream(principal_);
    if (holds_worker_slot_) core_->EndWorker();  // last touch of the core and access control
    delete this;
  }

  // IngestSink: the group commit finished a batch holding some of this stream's reports.
  void OnCommitted(const absl::Status& status, std::vector<IngestItem>& items) override {
    Actions a;
    uint64_t duplicates = 0;
    {
      absl::MutexLock lock(&mu_);
      if (!status.ok()) {
        // Not durable: no ack. End the stream so the client resends everything unacknowledged.
        if (final_status_.ok()) {
          final_status_ = ToGrpc(status);
        }
        in_flight_ -= items.size();
      } else {
        for (IngestItem& item : items) {
          const bool stored = item.result == storage::AppendResult::kStored;
          if (!stored) ++duplicates;
          acks_.Add(item.sequence, stored ? v1::RunAck::RESULT_DURABLE : v1::RunAck::RESULT_DUPLICATE,
                    item.report->run_id());
        }
      }
      for (IngestItem& item : items) {
        RecycleLocked(std::move(item.report));
        // Kept for the next report: what it holds is replaced (and freed) on this stream's thread, not here on the
        // group commit's writer thread. As many as reports, so bounded the same way.
        if (item.converted != nullptr) spare_converted_.push_back(std::move(item.converted));
      }
      // Counted before NextLocked releases the stream: once mu_ is dropped, another callback may finish the call
      // and delete this reactor, so a metrics call after it would read freed memory.
      if (duplicates > 0) core_->metrics()->RunsDuplicate(static_cast<double>(duplicates));
      a = NextLocked();
    }
    Run(this, a);
  }

 private:
  struct Actions {
    bool read = false;
    bool write = false;
    bool finish = false;
    grpc::WriteOptions write_options;
    grpc::Status status;
  };

  std::unique_ptr<v1::RunReport> TakeSpareLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (spare_.empty()) return std::make_unique<v1::RunReport>();
    std::unique_ptr<v1::RunReport> r = std::move(spare_.back());
    spare_.pop_back();
    return r;
  }
  // At most stream_window + 1 messages exist per stream (in flight + the one being read), so the pool is bounded.
  // Not cleared here: this runs on the group commit's writer thread too, and clearing frees the message's parts; the
  // parse that reuses it clears it, on this stream's thread.
  void RecycleLocked(std::unique_ptr<v1::RunReport> report) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (report == nullptr) return;
    spare_.push_back(std::move(report));
  }

  // The bytes gRPC just read into incoming_, leaving it empty for the next read. Its own (never inlined) function
  // so that tests/tsan.supp can name this one handoff: gRPC reads the next report into incoming_ on one of its
  // threads after we took this one on another, ordered by gRPC's completion queue, which TSan cannot see.
  __attribute__((noinline)) void TakeIncomingLocked(grpc::ByteBuffer* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    out->Swap(&incoming_);
  }

  // The ack the next StartWrite sends. Its own (never inlined) function so that tests/tsan.supp can name this one
  // handoff: gRPC serialised the previous ack out of outgoing_ inside StartWrite on one thread, and this runs after
  // that write completed, on another, ordered by gRPC's completion queue, which TSan cannot see.
  // The queue's front ack moves in (a protobuf move swaps, so the previous ack's strings are freed by the pop here).
  __attribute__((noinline)) void SetOutgoingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    outgoing_reports_ = acks_.PopFront(&outgoing_ack_);
    outgoing_.Clear();  // gRPC's writer wants an empty buffer; the previous write holds its own reference
    (void)SerializeTo(outgoing_ack_, &outgoing_);  // cannot fail: an ack is far below protobuf's 2 GiB
  }

  // Decides the next gRPC operations from the state. Called with mu_ held after every state change.
  Actions NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Actions a;
    if (finished_) return a;
    if (broken_ && !acks_.empty()) {
      // The client is gone: drop queued acks (their reports are stored or will be; the client resends).
      in_flight_ -= acks_.Clear();
    }
    if (!writing_ && !acks_.empty() && !broken_) {
      writing_ = true;
      SetOutgoingLocked();
      a.write = true;
      // No buffer hint: a hinted write may complete only when something else flushes the transport, and with one
      // write outstanding the flushing write would wait for it — once the client stops sending, the stream stalls
      // (seen as DEADLINE_EXCEEDED in fault_test under load).
    }
    if (!reading_ && !reads_done_ && !broken_ && final_status_.ok() && in_flight_ < core_->options().stream_window) {
      reading_ = true;
      ++unissued_reads_;
      a.read = true;
    }
    const bool input_over = reads_done_ || broken_ || !final_status_.ok();
    // A read outstanding, or its OnReadDone at work, does not hold the finish back (see the class comment): gRPC
    // keeps the reactor until that OnReadDone returned, and a report it reads after the finish is not acknowledged.
    if (input_over && in_flight_ == 0 && !writing_ && !a.write && unissued_reads_ == 0) {
      finished_ = true;
      a.finish = true;
      a.status = final_status_;
      timer_.Finish(final_status_.error_code());
    }
    return a;
  }

  // Issues the decided operations. Static, and touching `self` only when there is something to issue: with nothing
  // decided, another thread may already have finished the call and deleted the reactor the moment mu_ was released
  // (even a member call reads the freed object, through its vtable). With
  // something decided the reactor is alive — a decided read or write keeps the call from finishing, and Finish is
  // the last touch.
  static void Run(ReportRunReactor* self, const Actions& a) {
    if (!a.read && !a.write && !a.finish) return;
    if (a.write) self->StartWrite(&self->outgoing_, a.write_options);
    if (a.read) {
      self->StartRead(&self->incoming_);
      // The reactor is alive here: no Finish could be decided while this read was unissued. One may have been held
      // back for it meanwhile (e.g. a commit failed on another thread): decide it now.
      Actions then;
      {
        absl::MutexLock lock(&self->mu_);
        --self->unissued_reads_;
        then = self->NextLocked();
      }
      Run(self, then);
    }
    if (a.finish) self->Finish(a.status);  // last touch of `self`
  }

  ServiceCore* core_;
  AccessControl* access_;
  grpc::CallbackServerContext* ctx_;
  Principal principal_;             // set by the constructor, read-only afterwards
  bool holds_stream_slot_ = false;  // ditto
  bool holds_worker_slot_ = false;  // ditto
  RpcTimer timer_;
  // Owned by the read chain: one read at a time; replaced (under mu_) in OnReadDone before the next read starts.
  grpc::ByteBuffer incoming_;
  uint64_t next_sequence_ = 0;   // read chain only
  v1::RunAck outgoing_ack_;      // owned by the write chain: set under mu_ with writing_
  grpc::ByteBuffer outgoing_;    // outgoing_ack_ serialized; ditto, read by gRPC until the write is done
  size_t outgoing_reports_ = 0;  // reports outgoing_ stands for; ditto

  absl::Mutex mu_;
  AckQueue acks_ ABSL_GUARDED_BY(mu_);  // ranged when the client asked (set by the constructor)
  std::vector<std::unique_ptr<v1::RunReport>> spare_ ABSL_GUARDED_BY(mu_);  // messages for reuse
  std::vector<std::unique_ptr<ConvertedRun>> spare_converted_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // A read is decided, outstanding or in its OnReadDone: no other read starts (reports are prepared in order).
  bool reading_ ABSL_GUARDED_BY(mu_) = true;  // the constructor starts the first read
  // Reads decided under mu_ whose StartRead has not been issued yet (Run): no Finish until they are. Not the
  // constructor's read: no callback that could finish the call runs before the constructor returns.
  size_t unissued_reads_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* SelectorService::SelectAccelerator(grpc::CallbackServerContext* ctx,
                                                             const grpc::ByteBuffer* request,
                                                             grpc::ByteBuffer* response) {
  return Unary<v1::SelectAcceleratorRequest, v1::SelectAcceleratorResponse>(
      core_, access_, ctx, Method::kSelectAccelerator, request, response,
      [this](const v1::SelectAcceleratorRequest& req, v1::SelectAcceleratorResponse* resp, const Principal& who) {
        // A node token speaks for its node: the decision is logged under the token's node id, whatever the
        // request's node_id says, so that only that node's reports join it.
        const bool node = who.authenticated && who.role == Role::kNode;
        return core_->Select(req, resp, node ? who.node_id : req.node_id());
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* SelectorService::ReportRun(
    grpc::CallbackServerContext* ctx) {
  return new ReportRunReactor(core_, access_, ctx);
}

grpc::ServerUnaryReactor* SelectorService::ListStrategies(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return Unary<v1::ListStrategiesRequest, v1::ListStrategiesResponse>(
      core_, access_, ctx, Method::kListStrategies, request, response,
      [this](const auto& req, auto* resp) { return core_->ListStrategies(req, resp); });
}

grpc::ServerUnaryReactor* SelectorService::RegisterStrategy(grpc::CallbackServerContext* ctx,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  return SettingsUnary<v1::RegisterStrategyRequest, v1::RegisterStrategyResponse>(
      core_, access_, ctx, Method::kRegisterStrategy, request, response, [this](auto& req, auto* resp) {
        // The definition is stored: fields this server does not know are dropped first (as from reports).
        if (req.has_strategy() && StripUnknownFields(req.mutable_strategy())) core_->metrics()->UnknownFieldsDropped();
        return core_->RegisterStrategy(req, resp);
      });
}

grpc::ServerUnaryReactor* SelectorService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return Unary<v1::GetModelInfoRequest, v1::GetModelInfoResponse>(
      core_, access_, ctx, Method::kGetModelInfo, request, response,
      [this](const auto&, auto* resp) { return core_->GetModelInfo(resp); });
}

namespace {

// RetireStrategy and UnretireStrategy differ only in the state they set (and their message types).
template <typename Request, typename Response>
grpc::ServerUnaryReactor* SetRetired(ServiceCore* core, AccessControl* access, grpc::CallbackServerContext* ctx,
                                     Method method, const grpc::ByteBuffer* request, grpc::ByteBuffer* response,
                                     bool retired) {
  return SettingsUnary<Request, Response>(
      core, access, ctx, method, request, response, [core, retired](const Request& req, Response* resp) {
        bool changed = false;
        absl::Status st = core->SetStrategyRetired(req.id(), retired, resp->mutable_strategy(), &changed);
        resp->set_changed(changed);
        return st;
      });
}

}  // namespace

grpc::ServerUnaryReactor* SelectorService::RetireStrategy(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return SetRetired<v1::RetireStrategyRequest, v1::RetireStrategyResponse>(core_, access_, ctx, Method::kRetireStrategy,
                                                                           request, response, /*retired=*/true);
}

grpc::ServerUnaryReactor* SelectorService::UnretireStrategy(grpc::CallbackServerContext* ctx,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  return SetRetired<v1::UnretireStrategyRequest, v1::UnretireStrategyResponse>(
      core_, access_, ctx, Method::kUnretireStrategy, request, response, /*retired=*/false);
}

grpc::ServerUnaryReactor* ModelAdminService::Retrain(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  return BlockingUnary<v1::RetrainRequest, v1::RetrainResponse>(
      core_, access_, ctx, Method::kRetrain, request, response,
      [core = core_](const v1::RetrainRequest&, v1::RetrainResponse* out) { return core->Retrain(out); });
}

grpc::ServerUnaryReactor* ModelAdminService::QuarantineNode(grpc::CallbackServerContext* ctx,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  return SettingsUnary<v1::QuarantineNodeRequest, v1::QuarantineNodeResponse>(
      core_, access_, ctx, Method::kQuarantineNode, request, response,
      [core = core_](const v1::QuarantineNodeRequest& req, v1::QuarantineNodeResponse* out) {
        return core->QuarantineNode(req, out);
      });
}

grpc::ServerUnaryReactor* ModelAdminService::GetLiveQuality(grpc::CallbackServerContext* ctx,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  // A window can hold a million decisions: read on an admin worker, never on a gRPC callback thread.
  return BlockingUnary<v1::GetLiveQualityRequest, v1::GetLiveQualityResponse>(
      core_, access_, ctx, Method::kGetLiveQuality, request, response,
      [core = core_](const v1::GetLiveQualityRequest& req, v1::GetLiveQualityResponse* out) {
        return core->GetLiveQuality(req, out);
      });
}

grpc::ServerUnaryReactor* ModelAdminService::Backup(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  // A checkpoint flushes memtables and links or copies every file: file-system work, never on a gRPC thread.
  return BlockingUnary<v1::BackupRequest, v1::BackupResponse>(
      core_, access_, ctx, Method::kBackup, request, response,
      [core = core_](const v1::BackupRequest& req, v1::BackupResponse* out) { return core->Backup(req, out); });
}

grpc::ServerUnaryReactor* ModelAdminService::PinModel(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return BlockingUnary<v1::PinModelRequest, v1::PinModelResponse>(
      core_, access_, ctx, Method::kPinModel, request, response,
      [core = core_](const v1::PinModelRequest& req, v1::PinModelResponse* out) { return core->PinModel(req, out); });
}

grpc::ServerUnaryReactor* ModelAdminService::RollbackModel(grpc::CallbackServerContext* ctx,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  return BlockingUnary<v1::RollbackModelRequest, v1::RollbackModelResponse>(
      core_, access_, ctx, Method::kRollbackModel, request, response,
      [core = core_](const v1::RollbackModelRequest&, v1::RollbackModelResponse* out) {
        return core->RollbackModel(out);
      });
}

}  // namespace accelsel::server
