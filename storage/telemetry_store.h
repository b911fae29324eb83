// TelemetryStore: the durable RocksDB home of run reports, the strategy catalogue, model versions and
// service metadata. Errors are absl::Status values; no rocksdb::Status escapes this module.
//
// Thread safety: every method may be called from any number of threads at once (RPC threads, the ingest writer, the
// trainer). Writes (AppendRuns, PutStrategy, PutModel, PutMeta, Flush) are serialised inside the store, so
// AppendRuns' duplicate check and its write are one step; reads (GetRun, ScanRuns, ListStrategies, GetModel,
// ListModels, GetMeta, ApproximateBytes) run beside each other and beside writes, each on the RocksDB instance it
// took at its start; RunCount is a lock-free read. ScanRuns calls `fn` on the calling thread with no store lock held
// and keeps the snapshot it scans alive until it returns. Ownership: Open returns the only owner; the caller
// (ServiceCore) must keep it alive until every other user of the store (ingest writer, trainer, RPCs) has stopped.
// Results are returned by value; no reference into the store outlives a call.
#ifndef ACCELSEL_STORAGE_TELEMETRY_STORE_H_
#define ACCELSEL_STORAGE_TELEMETRY_STORE_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::storage {

// The on-disk schema this build writes. A store stamped with a larger number is refused on open; one stamped with a
// smaller number is migrated forward on open (storage/rocksdb_store.h, SchemaMigrations()) or refused.
inline constexpr uint32_t kSchemaVersion = 1;

struct StoreOptions {
  // Folder of the RocksDB database; created if missing.
  std::string path;
  // fsync the WAL before an append returns. true: an acknowledged report survives power loss, not only a
  // process crash. false: survives kill -9 of the process (the WAL is in the OS page cache) but not a power cut.
  bool sync_writes = true;
  // LRU block cache shared by all column families, MiB. 0 = RocksDB's default (8 MiB).
  size_t block_cache_mb = 64;
  // Write buffer (memtable) per column family, MiB.
  size_t write_buffer_mb = 32;
  // A few bytes the store keeps beside each run it stores (as the value of the run's time-index entry) for a reader
  // that needs only those (ScanRunSummariesInParts): the trainer's first pass, server/training_set.h. Null: none
  // kept. The store does not read them; `run_summary_format` names what they hold: when a store is opened with a
  // format other than the one its summaries were made under (or with none made yet, e.g. a store written by an
  // older build), every stored run's summary is made again before Open returns, one sequential pass over the runs.
  std::function<std::string(const v1::RunReport&)> run_summary;
  std::string run_summary_format;
};

enum class AppendResult { kStored, kDuplicate };

// A stored model version: the opaque blob produced by model/, and its metadata (a serialized ModelVersionInfo).
struct ModelBlob {
  uint64_t version = 0;
  std::string blob;
  v1::ModelVersionInfo info;
};

class TelemetryStore {
 public:
  // Opens (creating if needed) the store. Refuses a store whose schema version is newer than kSchemaVersion,
  // with FAILED_PRECONDITION naming both versions; migrates an older one forward, or refuses it the same way when
  // no migration leads from its schema.
  static absl::StatusOr<std::unique_ptr<TelemetryStore>> Open(const StoreOptions& options);
  virtual ~TelemetryStore() = default;

  // Appends reports in one atomic WriteBatch; returns one result per input, in order. A report whose run_id is
  // already stored (or repeated earlier in the same batch) is kDuplicate and is not written again. When this returns
  // OK, every kStored report is durable (per StoreOptions::sync_writes). On a write error nothing is acknowledged:
  // UNAVAILABLE for I/O errors (disk full), INTERNAL otherwise. Reports must be validated by the caller.
  virtual absl::StatusOr<std::vector<AppendResult>> AppendRuns(const std::vector<const v1::RunReport*>& runs) = 0;
  // AppendRuns, with the meta entry `meta_key` = `meta_value` in the same WriteBatch, written even when every run is
  // a duplicate. Cluster mode stores the last applied stream sequence this way, so that after a crash the position
  // and the runs it covers are always both there or both absent. Never fsynced, whatever sync_writes says: the runs
  // come from a source that holds them durably, and a batch lost to a power cut loses its position with it, so it is
  // applied again. `meta_key` is not a reserved key (see PutMeta).
  virtual absl::StatusOr<std::vector<AppendResult>> AppendRunsWithMeta(const std::vector<const v1::RunReport*>& runs,
                                                                       const std::string& meta_key,
                                                                       const std::string& meta_value) = 0;

  // AppendRuns (`meta_key` null) or AppendRunsWithMeta, for runs whose caller already made, on its own thread, what
  // the store would otherwise make of each on the one thread that writes: its stored bytes (`bytes`: the run
  // serialized, with nothing changed since) and its summary (`summary`: StoreOptions::run_summary of the run). Either
  // may be empty, and the store makes it. So many submitting threads share the work, and the writer only writes.
  // This default ignores both and calls AppendRuns or AppendRunsWithMeta.
  struct PreparedRun {
    const v1::RunReport* run = nullptr;
    std::string_view bytes;
    std::string_view summary;
  };
  virtual absl::StatusOr<std::vector<AppendResult>> AppendPreparedRuns(const std::vector<PreparedRun>& runs,
                                                                       const std::string* meta_key,
                                                                       const std::string* meta_value) {
    std::vector<const v1::RunReport*> plain;
    plain.reserve(runs.size());
    for (const PreparedRun& r : runs) plain.push_back(r.run);
    if (meta_key == nullptr) return AppendRuns(plain);
    return AppendRunsWithMeta(plain, *meta_key, meta_value != nullptr ? *meta_value : std::string());
  }

  // Point lookup by run_id. NOT_FOUND if absent.
  virtual absl::StatusOr<v1::RunReport> GetRun(const std::string& run_id) = 0;

  // Calls `fn` for every stored run in time order (time_unix_ms, then run_id), on a consistent snapshot taken when
  // the scan starts. `min_time_unix_ms` skips older runs. `fn` returning false stops the scan.
  virtual absl::Status ScanRuns(int64_t min_time_unix_ms, const std::function<bool(const v1::RunReport&)>& fn) = 0;
  // Calls `fn` for every stored run that `want(run_id)` accepts (every run when `want` is empty), once each, in no
  // particular order, on a consistent snapshot; `fn` returning false stops the scan. For a reader that does not need
  // time order (the trainer's two passes, server/training_set.h): the RocksDB store walks its runs in their own key
  // order, sequential reads with no index lookups, and asks `want` before it reads a run's value.
  absl::Status ScanRunsUnordered(const std::function<bool(std::string_view)>& want,
                                 const std::function<bool(const v1::RunReport&)>& fn) {
    return ScanRunsInParts(1, want, [&fn](size_t, const v1::RunReport& r) { return fn(r); });
  }
  // ScanRunsUnordered on up to `parts` threads at once (the caller's and parts - 1 of its own, which inherit its
  // nice level): the runs are split into ranges of their keys of about equal bytes on disk, `fn(part, run)` and
  // `want` are called concurrently for different parts (each part's calls on one thread), and `fn` returning false
  // stops every part. Fewer parts when the store is too small to split. This default is one part: ScanRuns from the
  // start, filtered.
  virtual absl::Status ScanRunsInParts(size_t parts, const std::function<bool(std::string_view)>& want,
                                       const std::function<bool(size_t part, const v1::RunReport&)>& fn) {
    (void)parts;
    return ScanRuns(std::numeric_limits<int64_t>::min(),
                    [&](const v1::RunReport& r) { return (want && !want(r.run_id())) || fn(0, r); });
  }

  // Calls `fn(part, time_unix_ms, run_id, summary)` for every stored run, once each, in no particular order, on a
  // consistent snapshot, with the summary StoreOptions::run_summary made of the run; for a run stored without one
  // (by a build or an open without run_summary) `summarize` makes it, from the run read for that. Parts and threads as
  // in ScanRunsInParts (here ranges of report time); `fn` returning false stops every part. A reader that needs only
  // the summaries thus reads no run that has one: the RocksDB store walks its time index, about 60 bytes a run with
  // the summary, against about 120 bytes a run on disk for the whole store and a parse. This default reads every run.
  virtual absl::Status ScanRunSummariesInParts(
      size_t parts, const std::function<std::string(const v1::RunReport&)>& summarize,
      const std::function<bool(size_t part, int64_t time_unix_ms, std::string_view run_id, std::string_view summary)>&
          fn) {
    return ScanRunsInParts(parts, nullptr, [&](size_t part, const v1::RunReport& r) {
      return fn(part, r.time_unix_ms(), r.run_id(), summarize(r));
    });
  }

  // Exact count of stored runs (kept in a counter updated within the same WriteBatch).
  virtual uint64_t RunCount() = 0;
  // Approximate bytes on disk: live SST files + WAL (memtable contents are counted through the WAL holding them).
  virtual uint64_t ApproximateBytes() = 0;

  // Strategy catalogue. PutStrategy overwrites; ListStrategies is ordered by id.
  virtual absl::Status PutStrategy(const v1::Strategy& strategy) = 0;
  virtual absl::StatusOr<std::vector<v1::Strategy>> ListStrategies() = 0;

  // Model versions. PutModel is durable on return. GetModel: NOT_FOUND if absent.
  virtual absl::Status PutModel(const ModelBlob& model) = 0;
  virtual absl::StatusOr<ModelBlob> GetModel(uint64_t version) = 0;
  // Metadata of every stored version, newest first (blobs not loaded).
  virtual absl::StatusOr<std::vector<v1::ModelVersionInfo>> ListModels() = 0;

  // Small service metadata (e.g. "serving_version", "pinned"). GetMeta returns nullopt if absent.
  virtual absl::Status PutMeta(const std::string& key, const std::string& value) = 0;
  virtual absl::StatusOr<std::optional<std::string>> GetMeta(const std::string& key) = 0;

  // Decision log (server/decision_log.h): key = decision id, value = a serialized v1::LoggedDecision. A log, not a
  // promise: PutDecisions writes one batch without fsync (a crash may lose the last writes, never a stored run) and
  // overwrites keys that exist (a decision joined with its run is written again).
  virtual absl::Status PutDecisions(const std::vector<std::pair<std::string, std::string>>& records) = 0;
  // nullopt if absent.
  virtual absl::StatusOr<std::optional<std::string>> GetDecision(const std::string& id) = 0;
  // Calls `fn(key, value)` for every key in [from, to) (empty `to` = no upper bound) in key order, or newest key
  // first when `reverse`, on a snapshot taken at the start; `fn` returning false stops.
  virtual absl::Status ScanDecisions(const std::string& from, const std::string& to, bool reverse,
                                     const std::function<bool(std::string_view, std::string_view)>& fn) = 0;
  // Deletes every key in [from, to) (retention).
  virtual absl::Status DeleteDecisions(const std::string& from, const std::string& to) = 0;

  // Flushes memtables and the WAL (used on shutdown).
  virtual absl::Status Flush() = 0;

  // Online backup: writes a consistent copy of every column family to `dir`, which must not exist (its parent
  // must), through RocksDB's Checkpoint after a flush of the memtables: SST files are hard-linked when `dir` is on
  // the store's file system, copied otherwise. Every run acknowledged before the call is in the copy; ingest goes
  // on meanwhile. The copy is a store folder: open it as --data_dir to restore. Returns the number of runs stored
  // when the backup began (all of them are in the copy, with any acknowledged while it ran).
  virtual absl::StatusOr<uint64_t> Checkpoint(const std::string& dir) = 0;

  // Retention: deletes up to `max_runs` of the oldest runs whose time_unix_ms is below `cutoff_unix_ms` (the run
  // and its time-index entry, with the run count, in one batch) and returns how many it deleted; call again until
  // it returns fewer than max_runs. One call holds the write lock for one batch only, so ingest waits at most that
  // long. A deleted run_id sent again is stored again.
  virtual absl::StatusOr<uint64_t> DeleteRunsBefore(int64_t cutoff_unix_ms, size_t max_runs) = 0;
};

}  // namespace accelsel::storage

#endif  // ACCELSEL_STORAGE_TELEMETRY_STORE_H_
