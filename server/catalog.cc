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
  }
  snapshot_.Set(std::move(next));
}

absl::StatusOr<bool> Catalog::Register(const v1::Strategy& strategy) {
  absl::MutexLock lock(&write_mu_);
  auto current = snapshot_.Get();
  if (auto it = current->index.find(strategy.id()); it != current->index.end()) {
    if (google::protobuf::util::MessageDifferencer::Equals(current->protos[it->second], strategy)) return false;
    return absl::AlreadyExistsError(absl::StrCat("strategy.id: \"", strategy.id(),
                                                  "\" is already registered with a different definition"));
  }
  if (absl::Status st = store_->PutStrategy(strategy); !st.ok()) return st;
  std::vector<v1::Strategy> protos = current->protos;
  protos.push_back(strategy);
  Publish(std::move(protos));
  return true;
}

}  // namespace accelsel::server
