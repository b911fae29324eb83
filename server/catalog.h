// Catalog: the strategy catalogue, persisted in the store and served from an immutable in-memory snapshot.
#ifndef ACCELSEL_SERVER_CATALOG_H_
#define ACCELSEL_SERVER_CATALOG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "accelsel/v1/accelsel.pb.h"
#include "model/types.h"
#include "server/snapshot.h"
#include "storage/telemetry_store.h"

namespace accelsel::server {

// Retired strategies stay in the snapshot (reports may still name them, and their runs keep counting); only
// selection and listing leave them out.
struct CatalogSnapshot {
  std::vector<v1::Strategy> protos;                 // ordered by id; retired ones have retired() set
  std::vector<model::Strategy> strategies;          // same order
  absl::flat_hash_map<std::string, size_t> index;   // id -> position
  size_t active = 0;                                // strategies not retired
  const model::Strategy* Find(const std::string& id) const {
    auto it = index.find(id);
    return it == index.end() ? nullptr : &strategies[it->second];
  }
  bool IsRetired(const std::string& id) const {
    auto it = index.find(id);
    return it != index.end() && protos[it->second].retired();
  }
};

class Catalog {
 public:
  explicit Catalog(storage::TelemetryStore* store) : store_(store), snapshot_(std::make_shared<CatalogSnapshot>()) {}

  absl::Status Load();
  std::shared_ptr<const CatalogSnapshot> Get() const { return snapshot_.Get(); }
  // Registers a validated strategy. Returns true if created, false if present with the same definition;
  // ALREADY_EXISTS if the id is taken by a different definition. A retired strategy stays retired when its
  // definition is registered again.
  absl::StatusOr<bool> Register(const v1::Strategy& strategy);
  // Retires (or restores) a strategy, persisted with its definition. Returns true if the state changed;
  // NOT_FOUND for an id not in the catalogue. `out` receives the definition with its new flag.
  absl::StatusOr<bool> SetRetired(const std::string& id, bool retired, v1::Strategy* out);

 private:
  void Publish(std::vector<v1::Strategy> protos);

  storage::TelemetryStore* store_;
  absl::Mutex write_mu_;  // serializes registrations
  Snapshot<CatalogSnapshot> snapshot_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_CATALOG_H_
