// Coordination on the NATS C client: key-value buckets for the trainer lease and the serving pointer, a stream for
// model chunks, core request/reply for admin calls (cluster/coordination.h).
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cluster/coordination.h"
#include "cluster/nats_connection.h"

namespace accelsel::cluster {
namespace {

constexpr char kConnectionName[] = "accelsel-server/coordination";  // as NATS lists its clients

constexpr char kLeaseKey[] = "trainer";
constexpr char kPointerKey[] = "serving";
constexpr char kChunkHeader[] = "Accelsel-Chunk";  // "i/n"

struct EntryDeleter {
  void operator()(kvEntry* e) const { kvEntry_Destroy(e); }
};
struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using EntryPtr = std::unique_ptr<kvEntry, EntryDeleter>;
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;

class NatsCoordination final : public Coordination {
 public:
  NatsCoordination(const RunStreamOptions& connection, const CoordinationOptions& options)
      : connection_(connection), options_(options) {}

  ~NatsCoordination() override {
    StopServingControl();
    StopWatchingSettings();
    if (lease_kv_ != nullptr) kvStore_Destroy(lease_kv_);
    if (pointer_kv_ != nullptr) kvStore_Destroy(pointer_kv_);
    if (settings_kv_ != nullptr) kvStore_Destroy(settings_kv_);
    if (js_ != nullptr) jsCtx_Destroy(js_);
    CloseNats(nc_, kConnectionName);
  }

  absl::Status Connect() {
    auto nc = ConnectNats(connection_, kConnectionName);
    if (!nc.ok()) return nc.status();
    nc_ = *nc;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = Millis(connection_.connect_timeout);
    if (natsStatus s = natsConnection_JetStream(&js_, nc_, &jo); s != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("NATS JetStream: ", NatsError(s)));
    }
    if (absl::Status st = Bucket(options_.lease_bucket, options_.lease_period, 1, &lease_kv_); !st.ok()) return st;
    if (absl::Status st = Bucket(options_.pointer_bucket, absl::ZeroDuration(), 8, &pointer_kv_); !st.ok()) return st;
    if (absl::Status st = Bucket(options_.settings_bucket, absl::ZeroDuration(), 1, &settings_kv_); !st.ok()) return st;
    return ModelStream();
  }

  absl::StatusOr<bool> HoldLease(std::string_view holder, std::string* current_holder) override {
    absl::MutexLock lock(&lease_mu_);
    const std::string value(holder);
    uint64_t rev = 0;
    natsStatus s = NATS_ERR;
    if (lease_revision_ != 0 && lease_holder_ == value) {
      s = kvStore_Update(&rev, lease_kv_, kLeaseKey, value.data(), static_cast<int>(value.size()), lease_revision_);
    } else {
      s = kvStore_Create(&rev, lease_kv_, kLeaseKey, value.data(), static_cast<int>(value.size()));
    }
    if (s == NATS_OK) {
      lease_revision_ = rev;
      lease_holder_ = value;
      if (current_holder != nullptr) *current_holder = value;
      return true;
    }
    const std::string error = NatsError(s);
    lease_revision_ = 0;
    // Refused: either someone else holds the key (the usual case) or NATS is away. Reading the key tells which.
    kvEntry* raw = nullptr;
    natsStatus g = kvStore_Get(&raw, lease_kv_, kLeaseKey);
    EntryPtr entry(raw);
    if (g == NATS_OK) {
      if (current_holder != nullptr) *current_holder = kvEntry_ValueString(entry.get());
      return false;
    }
    if (g == NATS_NOT_FOUND) {  // expired between the two calls: the next attempt may take it
      if (current_holder != nullptr) current_holder->clear();
      return false;
    }
    return absl::UnavailableError(absl::StrCat("trainer lease: ", error));
  }

  void ReleaseLease(std::string_view holder) override {
    absl::MutexLock lock(&lease_mu_);
    if (lease_revision_ == 0 || lease_holder_ != holder) return;
    kvEntry* raw = nullptr;
    if (kvStore_Get(&raw, lease_kv_, kLeaseKey) == NATS_OK) {
      EntryPtr entry(raw);
      if (kvEntry_Revision(entry.get()) == lease_revision_) (void)kvStore_Delete(lease_kv_, kLeaseKey);
    }
    lease_revision_ = 0;
  }

  absl::StatusOr<ModelRef> PublishModel(uint64_t version, std::string_view blob) override {
    ModelRef ref;
    ref.version = version;
    ref.bytes = blob.size();
    ref.sha256 = Sha256Hex(blob);
    const size_t chunk = std::max<size_t>(1, options_.chunk_bytes);
    ref.chunks = static_cast<uint32_t>(std::max<size_t>(1, (blob.size() + chunk - 1) / chunk));
    const std::string subject = Subject(version);
    for (uint32_t i = 0; i < ref.chunks; ++i) {
      const std::string_view part = blob.substr(std::min(blob.size(), i * chunk), chunk);
      natsMsg* raw = nullptr;
      natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, part.data(), static_cast<int>(part.size()));
      MsgPtr msg(raw);
      const std::string index = absl::StrCat(i, "/", ref.chunks);
      if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), kChunkHeader, index.c_str());
      jsPubAck* ack = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      if (s == NATS_OK) s = js_PublishMsg(&ack, js_, msg.get(), nullptr, &jerr);
      if (s != NATS_OK) {
        return absl::UnavailableError(absl::StrCat("publishing model version ", version, " chunk ", index, ": ",
                                                   NatsError(s), " (JetStream error ", jerr, ")"));
      }
      if (i == 0) ref.first_sequence = ack->Sequence;
      ref.last_sequence = ack->Sequence;
      jsPubAck_Destroy(ack);
    }
    return ref;
  }

  absl::StatusOr<std::string> FetchModel(const ModelRef& ref) override {
    std::string blob;
    blob.reserve(ref.bytes);
    const std::string subject = Subject(ref.version);
    uint32_t next = 0;
    for (uint64_t seq = ref.first_sequence; seq <= ref.last_sequence && next < ref.chunks; ++seq) {
      natsMsg* raw = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      natsStatus s = js_GetMsg(&raw, js_, options_.model_stream.c_str(), seq, nullptr, &jerr);
      MsgPtr msg(raw);
      if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        return absl::DataLossError(absl::StrCat("model version ", ref.version, ": chunk at stream sequence ", seq,
                                                " is gone from ", options_.model_stream, " (its byte limit?)"));
      }
      if (s != NATS_OK) {
        return absl::UnavailableError(absl::StrCat("fetching model version ", ref.version, ": ", NatsError(s)));
      }
      const char* index = nullptr;
      // Chunks of other versions (another trainer publishing at the same moment) may lie between ours.
      if (subject != natsMsg_GetSubject(msg.get()) || natsMsgHeader_Get(msg.get(), kChunkHeader, &index) != NATS_OK ||
          absl::StrCat(next, "/", ref.chunks) != index) {
        continue;
      }
      blob.append(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get())));
      ++next;
    }
    if (next != ref.chunks || blob.size() != ref.bytes || Sha256Hex(blob) != ref.sha256) {
      return absl::DataLossError(absl::StrCat("model version ", ref.version, ": ", next, " of ", ref.chunks,
                                              " chunks, ", blob.size(), " of ", ref.bytes,
                                              " bytes, or a different SHA-256; not loaded"));
    }
    return blob;
  }

  absl::StatusOr<PointerValue> GetPointer() override {
    kvEntry* raw = nullptr;
    natsStatus s = kvStore_Get(&raw, pointer_kv_, kPointerKey);
    EntryPtr entry(raw);
    if (s == NATS_NOT_FOUND) return PointerValue{};
    if (s != NATS_OK) return absl::UnavailableError(absl::StrCat("serving pointer: ", NatsError(s)));
    PointerValue out;
    out.revision = kvEntry_Revision(entry.get());
    out.value.assign(static_cast<const char*>(kvEntry_Value(entry.get())),
                     static_cast<size_t>(kvEntry_ValueLen(entry.get())));
    return out;
  }

  absl::StatusOr<uint64_t> SetPointer(std::string_view value, uint64_t expected_revision) override {
    uint64_t rev = 0;
    natsStatus s = expected_revision == 0
                       ? kvStore_Create(&rev, pointer_kv_, kPointerKey, value.data(), static_cast<int>(value.size()))
                       : kvStore_Update(&rev, pointer_kv_, kPointerKey, value.data(), static_cast<int>(value.size()),
                                        expected_revision);
    if (s == NATS_OK) return rev;
    const std::string error = NatsError(s);
    if (!Connected()) return absl::UnavailableError(absl::StrCat("serving pointer: ", error));
    return absl::FailedPreconditionError(
        absl::StrCat("serving pointer moved since revision ", expected_revision, ": ", error));
  }

  absl::Status ServeControl(ControlHandler handler) override {
    return control_.Serve(nc_, options_.control_subject, std::move(handler));
  }

  void StopServingControl() override { control_.Stop(); }

  absl::StatusOr<std::string> Control(std::string_view request, absl::Duration timeout,
                                      const std::atomic<bool>* cancel) override {
    // A private inbox read in short slices, so that a shutdown does not wait for a long retrain on the trainer.
    natsInbox* inbox = nullptr;
    if (natsInbox_Create(&inbox) != NATS_OK) return absl::InternalError("cannot create a NATS inbox");
    std::unique_ptr<natsInbox, decltype(&natsInbox_Destroy)> owned_inbox(inbox, &natsInbox_Destroy);
    // Subscribed to the inbox before the request goes out, so that no early answer is missed.
    natsSubscription* sub = nullptr;
    natsStatus s = natsConnection_SubscribeSync(&sub, nc_, inbox);
    std::unique_ptr<natsSubscription, decltype(&natsSubscription_Destroy)> owned_sub(sub, &natsSubscription_Destroy);
    if (s == NATS_OK) {
      s = natsConnection_PublishRequest(nc_, options_.control_subject.c_str(), inbox, request.data(),
                                        static_cast<int>(request.size()));
    }
    if (s != NATS_OK) return absl::UnavailableError(absl::StrCat("asking the trainer replica: ", NatsError(s)));
    const absl::Time end = absl::Now() + timeout;
    for (;;) {
      if (cancel != nullptr && cancel->load()) return absl::CancelledError("shutting down");
      if (absl::Now() >= end) {
        return absl::DeadlineExceededError(
            absl::StrCat("the trainer replica did not answer within ", absl::FormatDuration(timeout)));
      }
      natsMsg* raw = nullptr;
      s = natsSubscription_NextMsg(&raw, sub, 200);
      MsgPtr reply(raw);
      if (s == NATS_TIMEOUT) continue;
      if (s != NATS_OK) return absl::UnavailableError(absl::StrCat("asking the trainer replica: ", NatsError(s)));
      if (natsMsg_IsNoResponders(reply.get())) {
        return absl::UnavailableError(
            "no replica holds the trainer lease now (none runs the trainer, or it is being replaced); try again "
            "within a lease period");
      }
      return std::string(natsMsg_GetData(reply.get()), static_cast<size_t>(natsMsg_GetDataLength(reply.get())));
    }
  }

  absl::StatusOr<bool> CreateSetting(std::string_view key, std::string_view value) override {
    const std::string k(key);
    if (!Connected()) return absl::UnavailableError(absl::StrCat("creating setting ", k, ": not connected to NATS"));
    uint64_t rev = 0;
    natsStatus s = kvStore_Create(&rev, settings_kv_, k.c_str(), value.data(), static_cast<int>(value.size()));
    if (s == NATS_OK) return true;
    if (s == NATS_INVALID_ARG)
      return absl::InvalidArgumentError(absl::StrCat("settings key \"", k, "\": ", NatsError(s)));
    const std::string error = NatsError(s);
    // Refused: the key has a value (the usual case) or NATS went away; reading the key tells which.
    kvEntry* raw = nullptr;
    natsStatus g = kvStore_Get(&raw, settings_kv_, k.c_str());
    EntryPtr entry(raw);
    if (g == NATS_OK) return false;
    return absl::UnavailableError(absl::StrCat("creating setting ", k, ": ", error));
  }

  absl::Status PutSetting(std::string_view key, std::string_view value) override {
    const std::string k(key);
    // Refused at once while disconnected: the client would otherwise buffer the write and send it on reconnection,
    // long after the caller was told it failed.
    if (!Connected()) return absl::UnavailableError(absl::StrCat("writing setting ", k, ": not connected to NATS"));
    uint64_t rev = 0;
    natsStatus s = kvStore_Put(&rev, settings_kv_, k.c_str(), value.data(), static_cast<int>(value.size()));
    if (s == NATS_OK) return absl::OkStatus();
    if (s == NATS_INVALID_ARG)
      return absl::InvalidArgumentError(absl::StrCat("settings key \"", k, "\": ", NatsError(s)));
    return absl::UnavailableError(absl::StrCat("writing setting ", k, ": ", NatsError(s)));
  }

  absl::Status WatchSettings(SettingHandler on_change, std::function<void()> on_initial_done) override {
    absl::MutexLock lock(&watch_mu_);
    if (watch_started_) return absl::FailedPreconditionError("the settings bucket is already watched");
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    kvWatcher* watcher = nullptr;
    if (natsStatus s = kvStore_WatchAll(&watcher, settings_kv_, &wo); s != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("cannot watch ", options_.settings_bucket, ": ", NatsError(s)));
    }
    watch_started_ = true;
    watcher_ = watcher;
    watch_thread_ =
        std::thread([this, watcher, on_change = std::move(on_change), on_initial_done = std::move(on_initial_done)] {
          WatchLoop(watcher, on_change, on_initial_done);
        });
    return absl::OkStatus();
  }

  void StopWatchingSettings() override {
    kvWatcher* watcher = nullptr;
    std::thread thread;
    {
      absl::MutexLock lock(&watch_mu_);
      watcher = std::exchange(watcher_, nullptr);
      thread = std::move(watch_thread_);
    }
    if (watcher == nullptr) return;
    watch_stopping_.store(true);
    (void)kvWatcher_Stop(watcher);  // a waiting kvWatcher_Next returns at once
    if (thread.joinable()) thread.join();
    kvWatcher_Destroy(watcher);
  }

 private:
  void WatchLoop(kvWatcher* watcher, const SettingHandler& on_change, const std::function<void()>& on_initial_done) {
    bool initial = true;
    while (!watch_stopping_.load()) {
      kvEntry* raw = nullptr;
      const natsStatus s = kvWatcher_Next(&raw, watcher, 1000);
      EntryPtr entry(raw);
      if (s == NATS_TIMEOUT) continue;
      if (s != NATS_OK) {
        if (s == NATS_ILLEGAL_STATE || watch_stopping_.load()) return;  // stopped
        absl::SleepFor(absl::Milliseconds(200));  // NATS away: the watcher's consumer resumes when it is back
        continue;
      }
      if (entry == nullptr) {  // the marker after the current values
        if (initial && on_initial_done) on_initial_done();
        initial = false;
        continue;
      }
      const kvOperation op = kvEntry_Operation(entry.get());
      const bool deleted = op == kvOp_Delete || op == kvOp_Purge;
      const std::string_view value = deleted ? std::string_view()
                                             : std::string_view(static_cast<const char*>(kvEntry_Value(entry.get())),
                                                                static_cast<size_t>(kvEntry_ValueLen(entry.get())));
      on_change(kvEntry_Key(entry.get()), value, deleted);
    }
  }

  std::string Subject(uint64_t version) const { return absl::StrCat("accelsel.models.", version); }

  bool Connected() { return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED; }

  absl::Status Bucket(const std::string& name, absl::Duration ttl, uint8_t history, kvStore** out) {
    kvConfig cfg;
    kvConfig_Init(&cfg);
    cfg.Bucket = name.c_str();
    cfg.History = history;
    cfg.TTL = absl::ToInt64Nanoseconds(ttl);
    cfg.Replicas = options_.replicas;
    cfg.StorageType = js_FileStorage;
    natsStatus s = js_CreateKeyValue(out, js_, &cfg);
    // An existing bucket with other settings (an operator changed them, or another replica's flags differ) is
    // used as it is, as the run stream is.
    if (s != NATS_OK) s = js_KeyValue(out, js_, name.c_str());
    if (s != NATS_OK) {
      return absl::UnavailableError(absl::StrCat("cannot create or open key-value bucket ", name, ": ", NatsError(s)));
    }
    return absl::OkStatus();
  }

  absl::Status ModelStream() {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = options_.model_stream.c_str();
    const char* subjects[] = {"accelsel.models.>"};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = options_.replicas;
    cfg.MaxBytes = options_.model_stream_max_bytes;
    cfg.Discard = js_DiscardOld;
    jsStreamInfo* info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddStream(&info, js_, &cfg, nullptr, &jerr);
    if (info != nullptr) jsStreamInfo_Destroy(info);
    if (s == NATS_OK || jerr == JSStreamNameExistErr) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("cannot create stream ", options_.model_stream, ": ", NatsError(s),
                                               " (JetStream error ", jerr, ")"));
  }

  // Answers the requests on one subject with a handler (the lease holder's control).
  class Responder {
   public:
    absl::Status Serve(natsConnection* nc, const std::string& subject, ControlHandler handler) {
      absl::MutexLock lock(&mu_);
      if (sub_ != nullptr) return absl::OkStatus();
      handler_ = std::move(handler);
      natsStatus s = natsConnection_Subscribe(&sub_, nc, subject.c_str(), &Responder::OnRequest, this);
      if (s != NATS_OK) {
        sub_ = nullptr;
        return absl::UnavailableError(absl::StrCat("cannot serve ", subject, ": ", NatsError(s)));
      }
      return absl::OkStatus();
    }

    void Stop() {
      natsSubscription* sub = nullptr;
      {
        absl::MutexLock lock(&mu_);
        sub = std::exchange(sub_, nullptr);
      }
      if (sub == nullptr) return;
      (void)natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
    }

   private:
    // A request from another replica: the handler's answer goes back on the reply subject.
    static void OnRequest(natsConnection* nc, natsSubscription*, natsMsg* raw, void* closure) {
      MsgPtr msg(raw);
      auto* self = static_cast<Responder*>(closure);
      ControlHandler handler;
      {
        absl::MutexLock lock(&self->mu_);
        handler = self->handler_;
      }
      const char* reply = natsMsg_GetReply(msg.get());
      if (!handler || reply == nullptr) return;
      const std::string answer =
          handler(std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get()))));
      (void)natsConnection_Publish(nc, reply, answer.data(), static_cast<int>(answer.size()));
    }

    absl::Mutex mu_;
    natsSubscription* sub_ ABSL_GUARDED_BY(mu_) = nullptr;
    ControlHandler handler_ ABSL_GUARDED_BY(mu_);
  };

  const RunStreamOptions connection_;
  const CoordinationOptions options_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  kvStore* lease_kv_ = nullptr;
  kvStore* pointer_kv_ = nullptr;
  kvStore* settings_kv_ = nullptr;
  absl::Mutex lease_mu_;
  uint64_t lease_revision_ ABSL_GUARDED_BY(lease_mu_) = 0;  // our last write of the lease key; 0 = not held
  std::string lease_holder_ ABSL_GUARDED_BY(lease_mu_);
  Responder control_;
  absl::Mutex watch_mu_;
  bool watch_started_ ABSL_GUARDED_BY(watch_mu_) = false;
  kvWatcher* watcher_ ABSL_GUARDED_BY(watch_mu_) = nullptr;
  std::thread watch_thread_ ABSL_GUARDED_BY(watch_mu_);
  std::atomic<bool> watch_stopping_{false};
};

}  // namespace

bool Coordination::Available() { return true; }

absl::StatusOr<std::unique_ptr<Coordination>> Coordination::Open(const RunStreamOptions& connection,
                                                                 const CoordinationOptions& options) {
  if (connection.servers.empty()) return absl::InvalidArgumentError("--nats: no server URL");
  auto c = std::make_unique<NatsCoordination>(connection, options);
  if (absl::Status st = c->Connect(); !st.ok()) return st;
  return c;
}

}  // namespace accelsel::cluster
