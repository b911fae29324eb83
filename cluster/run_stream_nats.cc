// RunStream on the NATS C client (cnats): asynchronous JetStream publishes with message ids, and an ordered push
// consumer (no acks, flow control, gaps and reconnects handled by the library) for the apply side.
#include <nats/nats.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cluster/nats_connection.h"
#include "cluster/run_stream.h"

namespace accelsel::cluster {
namespace {

class NatsRunStream final : public RunStream {
 public:
  // Named after its stream, as NATS lists its clients and as the connection's log lines say.
  explicit NatsRunStream(const RunStreamOptions& options)
      : options_(options), name_(absl::StrCat("accelsel-server/", options.stream)) {}

  ~NatsRunStream() override {
    if (sub_ != nullptr) natsSubscription_Destroy(sub_);
    if (retired_ != nullptr) natsSubscription_Destroy(retired_);
    if (js_ != nullptr) jsCtx_Destroy(js_);
    CloseNats(nc_, name_.c_str());
  }

  absl::Status Connect() {
    auto nc = ConnectNats(options_, name_.c_str());
    if (!nc.ok()) return nc.status();
    nc_ = *nc;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = Millis(options_.connect_timeout);
    jo.PublishAsync.AckHandler = &NatsRunStream::OnAck;
    jo.PublishAsync.AckHandlerClosure = this;
    jo.PublishAsync.MaxPending = 8192;  // above the largest batch, so a publish never stalls on the limit
    if (natsStatus s = natsConnection_JetStream(&js_, nc_, &jo); s != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("NATS JetStream: ", NatsError(s)));
    }
    return CreateStream();
  }

  void PublishBatch(const std::vector<PublishItem>& items, std::vector<PublishOutcome>* out) override {
    out->assign(items.size(), PublishOutcome{absl::UnavailableError(absl::StrCat(
                                                 "the stream did not acknowledge the report within ",
                                                 absl::FormatDuration(options_.publish_timeout), "; resend it")),
                                             false});
    if (!Connected()) {
      for (PublishOutcome& o : *out) {
        o.status = absl::UnavailableError("cluster mode: NATS is unreachable; resend this report later");
      }
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      out_ = out;
      inflight_.clear();
    }
    std::string id;
    for (size_t i = 0; i < items.size(); ++i) {
      natsMsg* msg = nullptr;
      natsStatus s = natsMsg_Create(&msg, options_.subject.c_str(), nullptr, items[i].data.data(),
                                    static_cast<int>(items[i].data.size()));
      if (s == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        id.assign(items[i].msg_id);
        po.MsgId = id.c_str();
        po.ExpectStream = options_.stream.c_str();
        {
          // Registered before the publish: the acknowledgement may arrive before js_PublishMsgAsync returns.
          absl::MutexLock lock(&mu_);
          inflight_[msg] = i;
        }
        natsMsg* raw = msg;
        s = js_PublishMsgAsync(js_, &msg, &po);
        if (s != NATS_OK) {
          absl::MutexLock lock(&mu_);
          inflight_.erase(raw);
        }
      }
      if (s != NATS_OK) {
        (*out)[i].status = absl::UnavailableError(absl::StrCat("cluster mode: publish failed: ", NatsError(s)));
        natsMsg_Destroy(msg);  // no-op when the library took it
      }
    }
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = Millis(options_.publish_timeout);
    if (js_PublishAsyncComplete(js_, &wait) != NATS_OK) {
      // Take back what is still unacknowledged, so that no late acknowledgement reaches a later batch.
      natsMsgList pending{};
      if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) natsMsgList_Destroy(&pending);
    }
    absl::MutexLock lock(&mu_);
    inflight_.clear();  // their outcomes stay UNAVAILABLE
    out_ = nullptr;
  }

  absl::Status Subscribe(uint64_t after_sequence) override {
    if (sub_ != nullptr) {
      // Unsubscribed now, freed only at the next start-over (or with the stream): the connection's reading thread
      // may still be delivering a message to it, and libnats 3.4 was seen (under AddressSanitizer) to read a
      // subscription freed under it that way when one was destroyed at once while a backlog streamed in. A
      // start-over comes after a gap or a stall, far apart next to one delivery, and at most two are held.
      (void)natsSubscription_Unsubscribe(sub_);
      if (retired_ != nullptr) natsSubscription_Destroy(retired_);
      retired_ = sub_;
      sub_ = nullptr;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = options_.stream.c_str();
    so.Ordered = true;
    if (after_sequence == 0) {
      so.Config.DeliverPolicy = js_DeliverAll;
    } else {
      so.Config.DeliverPolicy = js_DeliverByStartSequence;
      so.Config.OptStartSeq = after_sequence + 1;
    }
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_SubscribeSync(&sub_, js_, options_.subject.c_str(), nullptr, &so, &jerr);
    if (s != NATS_OK) {
      return absl::UnavailableError(
          absl::StrCat("cannot consume stream ", options_.stream, ": ", NatsError(s), " (JetStream error ", jerr, ")"));
    }
    // Past this the library drops messages and says so (NATS_SLOW_CONSUMER); the applier sees the gap and starts
    // over after what it applied.
    (void)natsSubscription_SetPendingLimits(sub_, std::max(64, options_.pending_messages), 512 * 1024 * 1024);
    return absl::OkStatus();
  }

  absl::Status NextBatch(size_t max, absl::Duration wait, std::vector<StreamMessage>* out) override {
    out->clear();
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub_, Millis(wait));
    if (s == NATS_TIMEOUT) return absl::OkStatus();
    while (s == NATS_OK) {
      Take(msg, out);
      if (out->size() >= max) break;
      s = natsSubscription_NextMsg(&msg, sub_, 0);  // 0: only what is already delivered
    }
    if (s != NATS_OK && s != NATS_TIMEOUT && out->empty()) {
      return absl::UnavailableError(absl::StrCat("consuming stream ", options_.stream, ": ", NatsError(s)));
    }
    return absl::OkStatus();
  }

  bool Connected() override { return nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED; }

  absl::StatusOr<Bounds> State() override {
    jsStreamInfo* info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&info, js_, options_.stream.c_str(), nullptr, &jerr);
    if (s != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("cannot read the info of stream ", options_.stream, ": ", NatsError(s),
                                                 " (JetStream error ", jerr, ")"));
    }
    const Bounds bounds{info->State.FirstSeq, info->State.LastSeq};
    jsStreamInfo_Destroy(info);
    return bounds;
  }

 private:
  absl::Status CreateStream() {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = options_.stream.c_str();
    const char* subjects[] = {options_.subject.c_str()};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = options_.replicas;
    cfg.Duplicates = absl::ToInt64Nanoseconds(options_.duplicate_window);
    if (options_.max_age > absl::ZeroDuration()) {
      cfg.MaxAge = absl::ToInt64Nanoseconds(options_.max_age);
      cfg.Duplicates = std::min(cfg.Duplicates, cfg.MaxAge);  // JetStream refuses a window longer than the age
    }
    if (options_.max_bytes > 0) cfg.MaxBytes = options_.max_bytes;
    jsStreamInfo* info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddStream(&info, js_, &cfg, nullptr, &jerr);
    if (info != nullptr) jsStreamInfo_Destroy(info);
    // Same settings: OK. Other settings (an operator changed them, or another replica's flags differ): the stream as
    // it is wins; replicas never fight over its configuration.
    if (s == NATS_OK || jerr == JSStreamNameExistErr) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("cannot create stream ", options_.stream, " (replicas ",
                                               options_.replicas, "): ", NatsError(s), " (JetStream error ", jerr,
                                               ")"));
  }

  static void Take(natsMsg* msg, std::vector<StreamMessage>* out) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      StreamMessage& m = out->emplace_back();
      m.sequence = meta->Sequence.Stream;
      m.pending = meta->NumPending;
      m.data.assign(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
      jsMsgMetaData_Destroy(meta);
    }
    natsMsg_Destroy(msg);
  }

  // On the connection's thread, once per published message.
  static void OnAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<NatsRunStream*>(closure);
    {
      absl::MutexLock lock(&self->mu_);
      auto it = self->inflight_.find(msg);
      if (it != self->inflight_.end() && self->out_ != nullptr) {
        PublishOutcome& o = (*self->out_)[it->second];
        if (pa != nullptr) {
          o.status = absl::OkStatus();
          o.duplicate = pa->Duplicate;
        } else {
          o.status = absl::UnavailableError(absl::StrCat("the stream refused the report: ",
                                                         pae == nullptr            ? "unknown error"
                                                         : pae->ErrText != nullptr ? pae->ErrText
                                                                                   : natsStatus_GetText(pae->Err),
                                                         "; resend it"));
        }
        self->inflight_.erase(it);
      }
    }
    natsMsg_Destroy(msg);
  }

  const RunStreamOptions options_;
  const std::string name_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  natsSubscription* sub_ = nullptr;
  natsSubscription* retired_ = nullptr;  // the one before the last start-over, unsubscribed (Subscribe)
  absl::Mutex mu_;
  // The batch being published: message -> index in *out_. A message is unique here while it is in flight, since
  // the library keeps it alive until its acknowledgement handler has run.
  absl::flat_hash_map<natsMsg*, size_t> inflight_ ABSL_GUARDED_BY(mu_);
  std::vector<PublishOutcome>* out_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace

bool RunStream::Available() { return true; }

absl::StatusOr<std::unique_ptr<RunStream>> RunStream::Open(const RunStreamOptions& options) {
  if (options.servers.empty()) return absl::InvalidArgumentError("--nats: no server URL");
  auto stream = std::make_unique<NatsRunStream>(options);
  if (absl::Status st = stream->Connect(); !st.ok()) return st;
  return stream;
}

}  // namespace accelsel::cluster
