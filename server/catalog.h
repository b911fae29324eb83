// Catalog: the strategy catalogue, persisted in the store and served from an immutable in-memory snapshot.
//
// Thread safety: every method may be called concurrently. Get() never blocks on a writer: it copies the shared_ptr
// of the current CatalogSnapshot (Snapshot's own lock, held for the copy only), and the snapshot is immutable, so a
// request reads it without any lock for as long as it holds the pointer. Register, SetRetired and Apply (and Load) are
// serialised by write_mu_: each reads the current snapshot, writes the store, and publishes a new snapshot, as one
// step. Ownership: the catalogue borrows `store` (owned by ServiceCore, which outlives it); snapshots are shared
// with the callers that hold them.
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
  std::vector<v1::Strategy> protos;                // ordered by id; retired ones have retired() set
  std::vector<model::Strategy> strategies;         // same order
  absl::flat_hash_map<std::string, size_t> index;  // id -> position
  size_t active = 0;                               // strategies not retired
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

  absl::Status Load() ABSL_LOCKS_EXCLUDED(write_mu_);
  std::shared_ptr<const CatalogSnapshot> Get() const { return snapshot_.Get(); }
  // Registers a validated strategy. Returns true if created, false if present with the same definition;
  // ALREADY_EXISTS if the id is taken by a different definition. A retired strategy stays retired when its
  // definition is registered again.
  absl::StatusOr<bool> Register(const v1::Strategy& strategy) ABSL_LOCKS_EXCLUDED(write_mu_);
  // Retires (or restores) a strategy, persisted with its definition. Returns true if the state changed;
  // NOT_FOUND for an id not in the catalogue. `out` receives the definition with its new flag.
  absl::StatusOr<bool> SetRetired(const std::string& id, bool retired, v1::Strategy* out)
      ABSL_LOCKS_EXCLUDED(write_mu_);
  // Cluster mode (server/cluster_settings.h): makes the entry of `strategy.id()` exactly `strategy`, definition and
  // retired flag, whatever was there (the last writer in the cluster wins), persisted as Register does. Returns true
  // if anything changed.
  absl::StatusOr<bool> Apply(const v1::Strategy& strategy) ABSL_LOCKS_EXCLUDED(write_mu_);

 private:
  // Builds the snapshot of `protos` and swaps it in. Under write_mu_, so no two writers publish out of order.
  void Publish(std::vector<v1::Strategy> protos) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  storage::TelemetryStore* const store_;  // not owned
  absl::Mutex write_mu_;                  // serializes registrations and retirements (read, persist, publish)
  Snapshot<CatalogSnapshot> snapshot_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_CATALOG_H_
