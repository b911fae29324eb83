// The RocksDB implementation of TelemetryStore: its on-disk key layout (exposed for tests and offline tools such as
// `ldb`) and an Open variant that lets tests put a fault-injecting rocksdb::Env underneath the store.
//
// Thread safety: the store returned by OpenRocksDbStore keeps TelemetryStore's contract (see there). Inside it,
// write_mu_ serialises every write and the reopen after a failed one; instance_mu_ (taken after write_mu_, never
// before) guards only the shared_ptr to the open RocksDB instance, which each operation copies and then uses without
// a lock. The free functions here are pure. `env` is borrowed and must outlive the store.
#ifndef ACCELSEL_STORAGE_ROCKSDB_STORE_H_
#define ACCELSEL_STORAGE_ROCKSDB_STORE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/telemetry_store.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class Status;
class WriteBatch;
}  // namespace rocksdb

namespace accelsel::storage {

// Column families. The default column family exists (RocksDB requires it) but holds nothing.
inline constexpr char kRunsCf[] = "runs";  // run_id -> serialized v1::RunReport
// The time index: EncodeTimeKey(time, run_id) -> the run's summary (StoreOptions::run_summary), "" when none was made.
inline constexpr char kRunsByTimeCf[] = "runs_by_time";
inline constexpr char kCatalogCf[] = "catalog";      // strategy id -> serialized v1::Strategy
inline constexpr char kModelsCf[] = "models";        // ModelBlobKey / ModelInfoKey -> blob / ModelVersionInfo
inline constexpr char kMetaCf[] = "meta";            // service metadata (PutMeta) + the reserved keys below
inline constexpr char kDecisionsCf[] = "decisions";  // decision id -> serialized v1::LoggedDecision

// Reserved keys in `meta`, written only by the store (PutMeta refuses them). Values are decimal strings, so an
// operator can read them with `ldb --column_family=meta scan`.
inline constexpr char kSchemaVersionKey[] = "schema_version";
inline constexpr char kRunCountKey[] = "run_count";
// The StoreOptions::run_summary_format the store last made every stored run's summary in (written at the end of that
// pass, removed before one in another format).
inline constexpr char kRunSummaryFormatKey[] = "run_summary_format";

// runs_by_time key: 8 bytes big-endian of time_unix_ms with the sign bit flipped (so negative times sort before
// positive ones under bytewise order), then the run_id bytes.
std::string EncodeTimeKey(int64_t time_unix_ms, std::string_view run_id);
// models keys: one-byte tag ('b' = blob, 'i' = info) + 8 bytes big-endian version, so the metadata of all versions
// is one contiguous, version-ordered range that ListModels reads without touching blobs.
std::string ModelBlobKey(uint64_t version);
std::string ModelInfoKey(uint64_t version);

// The one place a rocksdb::Status becomes an absl::Status. IOError (incl. NoSpace) and the transient Busy/TryAgain
// -> UNAVAILABLE; Corruption -> DATA_LOSS; anything else -> INTERNAL. `what` names the operation.
absl::Status FromRocksStatus(const rocksdb::Status& status, std::string_view what);

// The open database a schema migration works on.
struct SchemaMigrationTarget {
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* runs = nullptr;
  rocksdb::ColumnFamilyHandle* runs_by_time = nullptr;
  rocksdb::ColumnFamilyHandle* catalog = nullptr;
  rocksdb::ColumnFamilyHandle* models = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* decisions = nullptr;
};

// One step forward of the on-disk schema, from `from_version` to `from_version + 1`. `apply` reads through
// target.db and adds its rewrites to `batch`; the store commits that batch together with the new schema stamp in
// one synced write, so a crash during a migration leaves the store at one schema or the other and the next open
// resumes from there. A step therefore holds its whole rewrite in memory once.
struct SchemaMigration {
  uint32_t from_version = 0;
  const char* summary = "";  // what the step changes, one line
  absl::Status (*apply)(const SchemaMigrationTarget& target, rocksdb::WriteBatch* batch) = nullptr;
};

// The steps this build applies on open to a store stamped with an older schema, ordered by from_version. Empty
// today: schema 1 is the only one ever released. A build that bumps kSchemaVersion adds its step here, and a store
// written by the last release under tests/fixtures/store_v<old>/ (tests/fixtures/README.md) for the test that opens
// it. A store older than the first step, or with a gap in the chain, is refused with FAILED_PRECONDITION.
std::span<const SchemaMigration> SchemaMigrations();

// Opens the RocksDB store. `env` (not owned, must outlive the store) replaces rocksdb::Env::Default() for all file
// I/O; nullptr means the default. TEST HOOK: production code calls TelemetryStore::Open, which passes nullptr;
// tests pass a fault-injecting EnvWrapper to exercise the write-error path.
absl::StatusOr<std::unique_ptr<TelemetryStore>> OpenRocksDbStore(const StoreOptions& options, rocksdb::Env* env);
// TEST HOOK: the same with another migration table in place of SchemaMigrations() (it must outlive the store), so
// tests can exercise the migration path while the real table is empty.
absl::StatusOr<std::unique_ptr<TelemetryStore>> OpenRocksDbStore(const StoreOptions& options, rocksdb::Env* env,
                                                                 std::span<const SchemaMigration> migrations);

}  // namespace accelsel::storage

#endif  // ACCELSEL_STORAGE_ROCKSDB_STORE_H_
