// Strategy catalogue: copy-on-write snapshots, so SelectAccelerator never waits on a registration.
#include "server/catalog.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/convert.h"

namespace accelsel::server {

absl::Status Catalog::Load() {
  auto list = store_->ListStrategies();
  if (!list.ok()) return list.status();
  absl::MutexLock lock(&write_mu_);
  Publish(*std::move(list));
  return absl::OkStatus();
}

void Catalog::Publish(std::vector<v1::Strategy> protos) {
  std::sort(protos.begin(), protos.end(), [](const auto& a, const auto& b) { return a.id() < b.id(); });
  auto next = std::make_shared<CatalogSnapshot>();
  next->protos = std::move(protos);
  next->strategies.reserve(next->protos.size());
  for (size_t i = 0; i < next->protos.size(); ++i) {
    next->strategies.push_back(FromProto(next->protos[i]));
    next->index[next->protos[i].id()] = i;
    if (!next->protos[i].retired()) ++next->active;
  }
  snapshot_.Set(std::move(next));
}

absl::StatusOr<bool> Catalog::Register(const v1::Strategy& strategy) {
  absl::MutexLock lock(&write_mu_);
  auto current = snapshot_.Get();
  if (auto it = current->index.find(strategy.id()); it != current->index.end()) {
    v1::Strategy definition = current->protos[it->second];
    definition.clear_retired();  // state, not definition (requests cannot set it: validate.cc)
    if (google::protobuf::util::MessageDifferencer::Equals(definition, strategy)) return false;
    return absl::AlreadyExistsError(
        absl::StrCat("strategy.id: \"", strategy.id(), "\" is already registered with a different definition"));
  }
  if (absl::Status st = store_->PutStrategy(strategy); !st.ok()) return st;
  std::vector<v1::Strategy> protos = current->protos;
  protos.push_back(strategy);
  Publish(std::move(protos));
  return true;
}

absl::StatusOr<bool> Catalog::SetRetired(const std::string& id, bool retired, v1::Strategy* out) {
  absl::MutexLock lock(&write_mu_);
  auto current = snapshot_.Get();
  auto it = current->index.find(id);
  if (it == current->index.end()) {
    return absl::NotFoundError(absl::StrCat("id: unknown strategy \"", id, "\" (ListStrategies shows the catalogue)"));
  }
  *out = current->protos[it->second];
  if (out->retired() == retired) return false;
  out->set_retired(retired);
  // The flag is stored in the strategy's own catalogue record: a store written before retirement existed reads as
  // "nothing retired", and no other key has to be kept in step with it.
  if (absl::Status st = store_->PutStrategy(*out); !st.ok()) return st;
  std::vector<v1::Strategy> protos = current->protos;
  protos[it->second] = *out;
  Publish(std::move(protos));
  return true;
}

absl::StatusOr<bool> Catalog::Apply(const v1::Strategy& strategy) {
  absl::MutexLock lock(&write_mu_);
  auto current = snapshot_.Get();
  auto it = current->index.find(strategy.id());
  if (it != current->index.end() &&
      google::protobuf::util::MessageDifferencer::Equals(current->protos[it->second], strategy)) {
    return false;
  }
  if (absl::Status st = store_->PutStrategy(strategy); !st.ok()) return st;
  std::vector<v1::Strategy> protos = current->protos;
  if (it != current->index.end()) {
    protos[it->second] = strategy;
  } else {
    protos.push_back(strategy);
  }
  Publish(std::move(protos));
  return true;
}

}  // namespace accelsel::server
