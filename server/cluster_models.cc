// One trainer per cluster, elected by lease; every replica follows the serving pointer (server/cluster_models.h).
#include "server/cluster_models.h"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "util/log.h"

namespace accelsel::server {

std::string DefaultReplicaId() {
  char host[256] = "";
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "replica", "-", getpid());
}

namespace {

std::string Answer(const absl::Status& status, absl::string_view payload) {
  return absl::StrCat(static_cast<int>(status.code()), "\n", status.ok() ? payload : status.message());
}

absl::Status ParseAnswer(absl::string_view answer, std::string* payload) {
  const size_t nl = answer.find('\n');
  int code = 0;
  if (nl == absl::string_view::npos || !absl::SimpleAtoi(answer.substr(0, nl), &code) || code < 0 || code > 16) {
    return absl::InternalError("the trainer replica's answer is malformed");
  }
  if (code == 0) {
    *payload = std::string(answer.substr(nl + 1));
    return absl::OkStatus();
  }
  return absl::Status(static_cast<absl::StatusCode>(code),
                      absl::StrCat("on the trainer replica: ", answer.substr(nl + 1)));
}

}  // namespace

std::string EncodePointer(const ServingPointer& p) {
  return absl::StrCat("version=", p.version, "\npinned=", p.pinned ? 1 : 0, "\nfirst_sequence=", p.ref.first_sequence,
                      "\nlast_sequence=", p.ref.last_sequence, "\nchunks=", p.ref.chunks, "\nbytes=", p.ref.bytes,
                      "\nsha256=", p.ref.sha256, "\nwriter=", p.writer,
                      "\ninfo=", absl::Base64Escape(p.info.SerializeAsString()), "\n");
}

absl::StatusOr<ServingPointer> DecodePointer(absl::string_view text) {
  ServingPointer p;
  bool have_version = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    const absl::string_view key = line.substr(0, eq);
    const absl::string_view value = line.substr(eq + 1);
    bool ok = true;
    if (key == "version") {
      ok = absl::SimpleAtoi(value, &p.version);
      have_version = ok;
    } else if (key == "pinned") {
      p.pinned = value == "1";
    } else if (key == "first_sequence") {
      ok = absl::SimpleAtoi(value, &p.ref.first_sequence);
    } else if (key == "last_sequence") {
      ok = absl::SimpleAtoi(value, &p.ref.last_sequence);
    } else if (key == "chunks") {
      ok = absl::SimpleAtoi(value, &p.ref.chunks);
    } else if (key == "bytes") {
      ok = absl::SimpleAtoi(value, &p.ref.bytes);
    } else if (key == "sha256") {
      p.ref.sha256 = std::string(value);
    } else if (key == "writer") {
      p.writer = std::string(value);
    } else if (key == "info") {
      std::string bytes;
      ok = absl::Base64Unescape(value, &bytes) && p.info.ParseFromString(bytes);
    }  // other keys: written by a newer version; ignored
    if (!ok) return absl::DataLossError(absl::StrCat("serving pointer: bad ", key));
  }
  if (!have_version || p.version == 0) return absl::DataLossError("serving pointer: no version");
  p.ref.version = p.version;
  return p;
}

absl::StatusOr<std::unique_ptr<ClusterModels>> ClusterModels::Start(const ClusterOptions& options, bool trainer_enabled,
                                                                    storage::TelemetryStore* store,
                                                                    ModelManager* models, Metrics* metrics) {
  cluster::CoordinationOptions co;
  co.lease_period = options.trainer_lease;
  co.replicas = options.nats.replicas;
  auto coordination = cluster::Coordination::Open(options.nats, co);
  if (!coordination.ok()) return coordination.status();
  std::unique_ptr<ClusterModels> c(
      new ClusterModels(options, trainer_enabled, store, models, metrics, *std::move(coordination)));
  models->SetTrainingGate([m = c.get()] { return m->trainer(); });
  c->Tick();  // serve the cluster's version from the start when it can be had now
  c->thread_ = std::thread([m = c.get()] { m->Loop(); });
  return c;
}

ClusterModels::ClusterModels(const ClusterOptions& options, bool trainer_enabled, storage::TelemetryStore* store,
                             ModelManager* models, Metrics* metrics,
                             std::unique_ptr<cluster::Coordination> coordination)
    : options_(options),
      trainer_enabled_(trainer_enabled),
      id_(options.replica_id.empty() ? DefaultReplicaId() : options.replica_id),
      store_(store),
      models_(models),
      series_(metrics->EnableCluster()),
      coordination_(std::move(coordination)),
      tick_(std::clamp(options.trainer_lease / 4, absl::Milliseconds(50), absl::Seconds(1))) {
  series_.trainer->Set(0);
}

ClusterModels::~ClusterModels() { Stop(); }

void ClusterModels::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cancel_.store(true);
  if (thread_.joinable()) thread_.join();
  coordination_->StopServingControl();
  {
    // A forwarded call still running (a retrain the shutdown cancelled) ends before the manager goes.
    absl::MutexLock lock(&stop_mu_);
    stop_mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &handling_));
  }
  absl::MutexLock lock(&tick_mu_);
  if (trainer_.exchange(false)) {
    coordination_->ReleaseLease(id_);
    log::Info("cluster_trainer_released", {{"replica", id_}});
  }
  series_.trainer->Set(0);
}

void ClusterModels::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu_);
      if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick_)) return;
    }
    Tick();
  }
}

void ClusterModels::Tick() {
  absl::MutexLock lock(&tick_mu_);
  Lease();
  auto pointer = coordination_->GetPointer();
  synced_ = pointer.ok() && Follow(*pointer);
  if (!pointer.ok() && last_error_ != pointer.status().message()) {
    last_error_ = std::string(pointer.status().message());
    log::Warn("cluster_pointer_unreadable", {{"error", last_error_}});
  }
  if (synced_ && trainer()) Lead();
}

void ClusterModels::Lease() {
  if (!trainer_enabled_) return;
  const absl::Time asked = absl::Now();
  std::string holder;
  auto held = coordination_->HoldLease(id_, &holder);
  if (held.ok() && *held) {
    lease_until_ = asked + options_.trainer_lease * 0.9;
  } else if (held.ok()) {
    lease_until_ = absl::InfinitePast();
  }  // NATS away: the lease lapses by itself at lease_until_
  const bool now_trainer = absl::Now() < lease_until_;
  if (held.ok() && holder != lease_holder_) lease_holder_ = holder;
  if (now_trainer == trainer()) return;
  trainer_.store(now_trainer, std::memory_order_release);
  series_.trainer->Set(now_trainer ? 1 : 0);
  if (now_trainer) {
    log::Info("cluster_trainer_elected", {{"replica", id_}, {"lease", absl::FormatDuration(options_.trainer_lease)}});
    absl::Status st = coordination_->ServeControl(
        [this](std::string_view request) { return HandleControl(absl::string_view(request.data(), request.size())); });
    if (!st.ok()) log::Warn("cluster_control_unavailable", {{"error", st.message()}});
  } else {
    log::Warn("cluster_trainer_lost", {{"replica", id_},
                                       {"holder", lease_holder_},
                                       {"error", held.ok() ? std::string() : std::string(held.status().message())}});
    coordination_->StopServingControl();
  }
}

bool ClusterModels::Follow(const cluster::PointerValue& value) {
  if (value.revision == 0) return true;  // nothing published yet: the first trainer's model will be
  if (value.revision == synced_revision_) return true;
  auto pointer = DecodePointer(value.value);
  if (!pointer.ok()) {
    series_.model_install_failures->Increment();
    if (last_error_ != pointer.status().message()) {
      last_error_ = std::string(pointer.status().message());
      log::Error("cluster_model_install_failed", {{"revision", value.revision}, {"error", last_error_}});
    }
    return false;
  }
  auto serving = models_->Serving();
  const bool same =
      serving != nullptr && serving->info.version() == pointer->version && models_->pinned() == pointer->pinned;
  if (!same) {
    const absl::Time start = absl::Now();
    absl::Status st;
    storage::ModelBlob blob{pointer->version, {}, pointer->info};
    // This store's blob under that number is used only if it is the very one published (same digest).
    if (auto local = store_->GetModel(pointer->version);
        local.ok() && cluster::Sha256Hex(local->blob) == pointer->ref.sha256) {
      blob.blob = std::move(local->blob);
    } else if (auto fetched = coordination_->FetchModel(pointer->ref); fetched.ok()) {
      blob.blob = *std::move(fetched);
    } else {
      st = fetched.status();
    }
    if (st.ok()) st = models_->InstallReplicated(blob, pointer->pinned);
    if (!st.ok()) {
      series_.model_install_failures->Increment();
      if (last_error_ != st.message()) {
        last_error_ = std::string(st.message());
        log::Error("cluster_model_install_failed", {{"version", pointer->version}, {"error", last_error_}});
      }
      return false;
    }
    series_.models_installed->Increment();
    log::Info("cluster_model_installed", {{"version", pointer->version},
                                          {"pinned", pointer->pinned},
                                          {"from", pointer->writer},
                                          {"bytes", pointer->ref.bytes},
                                          {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  }
  synced_revision_ = value.revision;
  pointer_ = *std::move(pointer);
  last_error_.clear();
  return true;
}

void ClusterModels::Lead() {
  auto serving = models_->Serving();
  if (serving == nullptr) return;
  const bool pinned = models_->pinned();
  const uint64_t version = serving->info.version();
  if (synced_revision_ != 0 && pointer_.version == version && pointer_.pinned == pinned) return;
  ServingPointer next;
  next.version = version;
  next.pinned = pinned;
  next.info = serving->info;
  next.writer = id_;
  auto it = published_.find(version);
  if (it != published_.end()) {
    next.ref = it->second;
  } else {
    auto blob = store_->GetModel(version);
    absl::StatusOr<cluster::ModelRef> ref =
        blob.ok() ? coordination_->PublishModel(version, blob->blob) : absl::StatusOr<cluster::ModelRef>(blob.status());
    if (!ref.ok()) {
      if (last_error_ != ref.status().message()) {
        last_error_ = std::string(ref.status().message());
        log::Warn("cluster_model_publish_failed", {{"version", version}, {"error", last_error_}});
      }
      return;
    }
    next.ref = *ref;
    published_[version] = *ref;
  }
  auto revision = coordination_->SetPointer(EncodePointer(next), synced_revision_);
  if (!revision.ok()) {
    // Another writer came first (a former trainer), or NATS is away: the next tick follows the pointer first.
    log::Warn("cluster_pointer_not_moved", {{"version", version}, {"error", revision.status().message()}});
    synced_revision_ = 0;
    return;
  }
  synced_revision_ = *revision;
  pointer_ = std::move(next);
  series_.models_published->Increment();
  log::Info("cluster_model_published",
            {{"version", version}, {"pinned", pinned}, {"bytes", pointer_.ref.bytes}, {"revision", *revision}});
}

std::string ClusterModels::HandleControl(absl::string_view request) {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stopping_) return Answer(absl::UnavailableError("the trainer replica is shutting down"), "");
    ++handling_;
  }
  std::string payload;
  absl::Status status;
  if (!trainer()) {
    status = absl::UnavailableError("this replica no longer holds the trainer lease; try again");
  } else {
    status = Call(request, &payload);
  }
  absl::MutexLock lock(&stop_mu_);
  --handling_;
  return Answer(status, payload);
}

absl::Status ClusterModels::Call(absl::string_view request, std::string* payload) {
  if (trainer()) {
    uint64_t version = 0;
    if (request == "retrain") {
      auto info = models_->RetrainNow("rpc");
      if (!info.ok()) return info.status();
      *payload = info->SerializeAsString();
    } else if (absl::ConsumePrefix(&request, "pin ") && absl::SimpleAtoi(request, &version)) {
      auto v = models_->Pin(version);
      if (!v.ok()) return v.status();
      *payload = absl::StrCat(*v);
    } else if (request == "rollback") {
      auto v = models_->Rollback();
      if (!v.ok()) return v.status();
      *payload = absl::StrCat(*v);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown cluster control request '", request, "'"));
    }
  } else {
    auto answer =
        coordination_->Control(std::string_view(request.data(), request.size()), options_.control_timeout, &cancel_);
    if (!answer.ok()) return answer.status();
    if (absl::Status st = ParseAnswer(*answer, payload); !st.ok()) return st;
  }
  Tick();  // the trainer publishes the outcome, and the caller's replica serves it, before the call returns
  return absl::OkStatus();
}

absl::StatusOr<v1::ModelVersionInfo> ClusterModels::Retrain() {
  std::string payload;
  if (absl::Status st = Call("retrain", &payload); !st.ok()) return st;
  v1::ModelVersionInfo info;
  if (!info.ParseFromString(payload)) return absl::InternalError("the trainer replica's answer is malformed");
  return info;
}

absl::StatusOr<uint64_t> ClusterModels::Pin(uint64_t version) {
  std::string payload;
  if (absl::Status st = Call(absl::StrCat("pin ", version), &payload); !st.ok()) return st;
  uint64_t v = 0;
  if (!absl::SimpleAtoi(payload, &v)) return absl::InternalError("the trainer replica's answer is malformed");
  return v;
}

absl::StatusOr<uint64_t> ClusterModels::Rollback() {
  std::string payload;
  if (absl::Status st = Call("rollback", &payload); !st.ok()) return st;
  uint64_t v = 0;
  if (!absl::SimpleAtoi(payload, &v)) return absl::InternalError("the trainer replica's answer is malformed");
  return v;
}

}  // namespace accelsel::server
