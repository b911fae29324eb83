// Catalogue and quarantine replicated through a NATS key-value bucket (server/cluster_settings.h).
#include "server/cluster_settings.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "util/log.h"

namespace accelsel::server {
namespace {

constexpr absl::string_view kStrategyPrefix = "strategy.";
constexpr absl::string_view kQuarantinePrefix = "quarantine.";

// NATS keys allow only [-/_=.a-zA-Z0-9]; ids are wider, so keys carry them in hex.
bool Unhex(absl::string_view hex, std::string* out) {
  if (hex.empty() || hex.size() % 2 != 0) return false;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = absl::HexStringToBytes(hex);
  return true;
}

}  // namespace

std::string ClusterSettings::StrategyKey(absl::string_view id) {
  return absl::StrCat(kStrategyPrefix, absl::BytesToHexString(id));
}

std::string ClusterSettings::QuarantineKey(absl::string_view node_id) {
  return absl::StrCat(kQuarantinePrefix, absl::BytesToHexString(node_id));
}

absl::StatusOr<std::unique_ptr<ClusterSettings>> ClusterSettings::Start(const ClusterOptions& options,
                                                                        Appliers appliers,
                                                                        absl::Duration initial_timeout) {
  cluster::CoordinationOptions co;
  co.lease_period = options.trainer_lease;  // the lease bucket exists already; created with the same TTL if not
  co.replicas = options.nats.replicas;
  auto coordination = cluster::Coordination::Open(options.nats, co);
  if (!coordination.ok()) return coordination.status();
  std::unique_ptr<ClusterSettings> s(new ClusterSettings(*std::move(coordination), std::move(appliers)));
  ClusterSettings* self = s.get();
  absl::Status st = s->coordination_->WatchSettings(
      [self](std::string_view key, std::string_view value, bool deleted) {
        self->OnChange(absl::string_view(key.data(), key.size()), absl::string_view(value.data(), value.size()),
                       deleted);
      },
      [self] {
        absl::MutexLock lock(&self->mu_);
        self->initial_done_ = true;
      });
  if (!st.ok()) return st;
  size_t keys = 0;
  {
    absl::MutexLock lock(&s->mu_);
    if (!s->mu_.AwaitWithTimeout(absl::Condition(&s->initial_done_), initial_timeout)) {
      return absl::UnavailableError(absl::StrCat("cluster settings: the bucket's current values did not arrive within ",
                                                 absl::FormatDuration(initial_timeout)));
    }
    keys = s->seen_.size();
  }
  log::Info("cluster_settings_loaded", {{"keys", keys}});
  return s;
}

void ClusterSettings::Stop() { coordination_->StopWatchingSettings(); }

absl::Status ClusterSettings::PublishStrategy(const v1::Strategy& strategy) {
  return Publish(StrategyKey(strategy.id()), strategy.SerializeAsString());
}

absl::Status ClusterSettings::PublishQuarantine(absl::string_view node_id, bool quarantined) {
  return Publish(QuarantineKey(node_id), quarantined ? "1" : "0");
}

absl::StatusOr<size_t> ClusterSettings::PublishAbsent(const std::vector<v1::Strategy>& strategies,
                                                      const std::set<std::string>& quarantined) {
  std::vector<std::pair<std::string, std::string>> items;
  for (const v1::Strategy& s : strategies) items.emplace_back(StrategyKey(s.id()), s.SerializeAsString());
  for (const std::string& node : quarantined) items.emplace_back(QuarantineKey(node), "1");
  size_t written = 0;
  for (const auto& [key, value] : items) {
    {
      absl::MutexLock lock(&mu_);
      if (seen_.contains(key)) continue;
    }
    absl::StatusOr<bool> created = coordination_->CreateSetting(key, value);
    if (!created.ok()) return created.status();
    if (*created) ++written;
  }
  return written;
}

absl::Status ClusterSettings::Publish(const std::string& key, const std::string& value) {
  {
    absl::MutexLock lock(&mu_);
    auto it = seen_.find(key);
    if (it != seen_.end() && it->second == value) return absl::OkStatus();  // the bucket holds it already
  }
  absl::Status st = coordination_->PutSetting(key, value);
  if (st.ok()) return st;
  log::Warn("cluster_setting_not_replicated", {{"key", key}, {"error", std::string(st.message())}});
  if (!absl::IsUnavailable(st)) return st;
  return absl::UnavailableError(
      absl::StrCat("cluster mode: NATS unreachable; the change was not replicated, retry (", st.message(), ")"));
}

void ClusterSettings::OnChange(absl::string_view key, absl::string_view value, bool deleted) {
  Apply(key, value, deleted);
  // Recorded after the apply: a writer that finds its state equal to the bucket's skips its write, which must
  // never happen while this replica still holds the state before this change.
  absl::MutexLock lock(&mu_);
  if (deleted) {
    seen_.erase(key);
  } else {
    seen_[key] = std::string(value);
  }
}

void ClusterSettings::Apply(absl::string_view key, absl::string_view value, bool deleted) {
  std::string id;
  if (absl::StartsWith(key, kStrategyPrefix)) {
    if (deleted) {
      // Strategies are retired, never removed: a key deleted by hand leaves every catalogue as it is.
      log::Warn("cluster_setting_ignored", {{"key", std::string(key)}, {"why", "deleted strategy key"}});
      return;
    }
    v1::Strategy strategy;
    if (!strategy.ParseFromArray(value.data(), static_cast<int>(value.size())) || StrategyKey(strategy.id()) != key ||
        strategy.id().empty()) {
      log::Warn("cluster_setting_ignored", {{"key", std::string(key)}, {"why", "not a strategy of this id"}});
      return;
    }
    if (appliers_.strategy) appliers_.strategy(strategy);
  } else if (absl::StartsWith(key, kQuarantinePrefix) && Unhex(key.substr(kQuarantinePrefix.size()), &id)) {
    if (appliers_.quarantine) appliers_.quarantine(id, !deleted && value == "1");
  } else {
    // Written by a newer version: left alone.
    log::Warn("cluster_setting_ignored", {{"key", std::string(key)}, {"why", "unknown key"}});
  }
}

}  // namespace accelsel::server
