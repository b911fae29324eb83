// RocksDB-backed TelemetryStore: column families, tuned options, the schema check on open, deduplicating atomic
// appends, snapshot scans and the single rocksdb::Status -> absl::Status conversion.
#include "storage/rocksdb_store.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/listener.h"
#include "rocksdb/metadata.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"
#include "rocksdb/table.h"
#include "rocksdb/transaction_log.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"

// Debian's Abseil 20220623 has no status_macros.h; this module keeps its own, scoped to this file.
#define STORAGE_RETURN_IF_ERROR(expr)           \
  do {                                          \
    if (absl::Status _st = (expr); !_st.ok()) { \
      return _st;                               \
    }                                           \
  } while (false)

namespace accelsel::storage {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
// Runs fetched per MultiGet during a scan: large enough to amortise the call, small enough that a scan which the
// callback stops early has not read much ahead.
constexpr size_t kScanChunk = 256;
constexpr char kModelBlobTag = 'b';
constexpr char kModelInfoTag = 'i';

void AppendBigEndian64(uint64_t value, std::string* out) {
  char bytes[8];
  for (int i = 7; i >= 0; --i) {
    bytes[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  out->append(bytes, sizeof(bytes));
}

void EncodeTimeKeyInto(int64_t time_unix_ms, std::string_view run_id, std::string* out) {
  out->clear();
  AppendBigEndian64(static_cast<uint64_t>(time_unix_ms) ^ (uint64_t{1} << 63), out);
  out->append(run_id.data(), run_id.size());
}

// The report time of a runs_by_time key (EncodeTimeKeyInto); the key holds at least 8 bytes.
int64_t DecodeTime(const rocksdb::Slice& key) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<unsigned char>(key[i]);
  return static_cast<int64_t>(value ^ (uint64_t{1} << 63));
}

std::string ModelKey(char tag, uint64_t version) {
  std::string key(1, tag);
  AppendBigEndian64(version, &key);
  return key;
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// Swallows RocksDB's info log. Used only by the read-only schema probe, so that refusing a store leaves every file
// in its folder untouched (RocksDB would otherwise rotate LOG into LOG.old.*).
class DiscardingLogger : public rocksdb::Logger {
 public:
  DiscardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

// Best available codec of `preferred`, in order; kNoCompression if the RocksDB build has none of them.
rocksdb::CompressionType PickCompression(std::initializer_list<rocksdb::CompressionType> preferred) {
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  for (rocksdb::CompressionType type : preferred) {
    if (std::find(supported.begin(), supported.end(), type) != supported.end()) return type;
  }
  return rocksdb::kNoCompression;
}

// Options shared by every column family. `point_lookups` adds the bloom filters that make run_id dedup cheap.
rocksdb::ColumnFamilyOptions MakeCfOptions(const StoreOptions& options, const std::shared_ptr<rocksdb::Cache>& cache,
                                           bool point_lookups) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  // One LRU cache for all column families so StoreOptions::block_cache_mb bounds read memory as a whole.
  if (cache != nullptr) table.block_cache = cache;
  // Index and filter blocks live in that cache too (otherwise they sit outside it and grow with the data);
  // L0's are pinned because every lookup consults them.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  if (point_lookups) {
    // 10 bits/key ~ 1% false positives: a dedup check for a new run_id (the common case) usually reads no data
    // block at all. Not used on runs_by_time, which is only ever range-scanned.
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    // The same idea for the memtable, where the freshest run_ids are.
    cf.memtable_prefix_bloom_size_ratio = 0.02;
    cf.memtable_whole_key_filtering = true;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  // Memtable size per column family. Memory is taken from the arena as it fills, so the small families
  // (meta, catalog) do not cost this much.
  if (options.write_buffer_mb > 0) cf.write_buffer_size = options.write_buffer_mb * kMiB;
  // One memtable filling while another flushes, plus one spare, so a slow flush does not stall appends.
  cf.max_write_buffer_number = 3;

  // Leveled compaction: telemetry is read back by point lookups and scans, which favour few sorted runs over
  // universal compaction's lower write amplification.
  cf.compaction_style = rocksdb::kCompactionStyleLevel;
  // Size levels from the last one upward: bounds space amplification to about 1.1x as the store grows.
  cf.level_compaction_dynamic_level_bytes = true;
  // LZ4 on the upper levels (cheap on the write path); ZSTD on the last level, where ~90% of the data ends up and is
  // written once by compaction, for the better ratio. Debian 12's librocksdb links both; fall back if a build
  // lacks them.
  cf.compression = PickCompression({rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  cf.bottommost_compression = PickCompression({rocksdb::kZSTD, rocksdb::kLZ4Compression});
  return cf;
}

// Notes that RocksDB entered an error state (failed WAL write, flush or compaction) and keeps it from recovering on
// its own: the store replaces the whole instance instead (see RocksDbTelemetryStore::WritableInstanceLocked).
class ErrorListener : public rocksdb::EventListener {
 public:
  void OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status* /*bg_error*/) override {
    error_seen_.store(true);
  }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
  bool error_seen() const { return error_seen_.load(); }

 private:
  std::atomic<bool> error_seen_{false};
};

rocksdb::DBOptions MakeDbOptions(const StoreOptions& options, rocksdb::Env* env,
                                 std::shared_ptr<rocksdb::EventListener> listener) {
  rocksdb::DBOptions db;
  db.listeners.push_back(std::move(listener));
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  if (env != nullptr) db.env = env;
  // One flush and one compaction at a time: the service shares its cores with the RPC threads.
  db.max_background_jobs = 2;
  // meta gets one key per append and catalog hardly any, so their memtables would never fill and would pin every
  // WAL file written since their last flush. Past this total RocksDB flushes the families holding the oldest WAL.
  const uint64_t write_buffer_bytes = (options.write_buffer_mb > 0 ? options.write_buffer_mb : 64) * kMiB;
  db.max_total_wal_size = 4 * write_buffer_bytes;
  // Write SST files back to disk incrementally instead of in one burst at their final fsync.
  db.bytes_per_sync = 1 * kMiB;
  // RocksDB's own info LOG is for operators; bound the disk it takes.
  db.keep_log_file_num = 5;
  db.max_log_file_size = 16 * kMiB;
  // paranoid_checks stays on (default): a failed write puts the DB in an error state instead of carrying on.
  return db;
}

// Parses the schema stamp. nullopt if absent (a fresh or never-stamped store).
absl::StatusOr<std::optional<uint32_t>> ReadSchemaVersion(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, kSchemaVersionKey, &value);
  if (s.IsNotFound()) return std::optional<uint32_t>();
  if (!s.ok()) return FromRocksStatus(s, "reading the schema version");
  uint32_t version = 0;
  if (!absl::SimpleAtoi(value, &version)) {
    return absl::DataLossError(absl::StrCat("unreadable schema version \"", value, "\" in meta"));
  }
  return std::optional<uint32_t>(version);
}

// The migration table of this build (SchemaMigrations()). Empty: schema 1 is the only schema ever released. The
// build that bumps kSchemaVersion to 2 makes this an array holding {1, "what changes", &MigrateSchema1To2}.
constexpr std::span<const SchemaMigration> kMigrations{};

const SchemaMigration* FindMigration(std::span<const SchemaMigration> migrations, uint32_t from_version) {
  for (const SchemaMigration& m : migrations) {
    if (m.from_version == from_version && m.apply != nullptr) return &m;
  }
  return nullptr;
}

// OK when this build can open a store stamped `stored`: the same schema, or an older one from which `migrations`
// lead, one step at a time, to kSchemaVersion.
absl::Status CheckSchemaVersion(uint32_t stored, const std::string& path, std::span<const SchemaMigration> migrations) {
  if (stored > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("store schema ", stored, " is newer than this build's ",
                                                      kSchemaVersion, "; refusing to open ", path,
                                                      " (run a newer accelsel, or point --data_dir elsewhere)"));
  }
  for (uint32_t v = stored; v < kSchemaVersion; ++v) {
    if (FindMigration(migrations, v) == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store schema ", stored, " is older than this build's ", kSchemaVersion, " and no migration from schema ", v,
          " to ", v + 1, " exists; refusing to open ", path, " (upgrade through a release that migrates it)"));
    }
  }
  return absl::OkStatus();
}

// Opens an existing store read-only (no file in its folder is created or changed) and checks its schema stamp, so
// that a store written by a newer build is refused before this build's RocksDB writes anything to it.
absl::Status ProbeSchema(const rocksdb::DBOptions& base, const std::string& path,
                         const std::vector<std::string>& families, std::span<const SchemaMigration> migrations) {
  rocksdb::DBOptions db_options = base;
  db_options.info_log = std::make_shared<DiscardingLogger>();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(db_options, path, descriptors, &handles, &raw);
  if (!s.ok()) return FromRocksStatus(s, absl::StrCat("opening ", path, " read-only to check its schema"));
  std::unique_ptr<rocksdb::DB> db(raw);
  absl::Status result = absl::OkStatus();
  const auto meta = std::find(families.begin(), families.end(), kMetaCf);
  if (meta != families.end()) {
    absl::StatusOr<std::optional<uint32_t>> stored = ReadSchemaVersion(db.get(), handles[meta - families.begin()]);
    if (!stored.ok()) {
      result = stored.status();
    } else if (stored->has_value()) {
      result = CheckSchemaVersion(**stored, path, migrations);
    }
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  db->Close().PermitUncheckedError();
  return result;
}

// Releases a snapshot when the read that took it ends, however it ends.
class ScopedSnapshot {
 public:
  explicit ScopedSnapshot(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}
  ~ScopedSnapshot() { db_->ReleaseSnapshot(snapshot_); }
  ScopedSnapshot(const ScopedSnapshot&) = delete;
  ScopedSnapshot& operator=(const ScopedSnapshot&) = delete;
  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

// Read options of a scan that reads a whole column family once: on `snapshot`, and kept from evicting the hot blocks
// that serve lookups.
rocksdb::ReadOptions WholeScanReadOptions(const ScopedSnapshot& snapshot) {
  rocksdb::ReadOptions read;
  read.snapshot = snapshot.get();
  read.fill_cache = false;
  return read;
}

// Parses a stored run (value of the runs family); `run_id` names it in the error.
absl::Status ParseStoredRun(const rocksdb::Slice& value, const rocksdb::Slice& run_id, v1::RunReport* run) {
  if (run->ParseFromArray(value.data(), static_cast<int>(value.size()))) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("stored run ", run_id.ToString(), " does not parse"));
}

// One open RocksDB instance and its column families, closed when its last user lets go. After a write error the
// store replaces the instance (RecoverLocked), so each operation holds a shared_ptr to the instance it started on.
struct Instance {
  Instance() = default;
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;
  ~Instance() {
    if (db != nullptr) {
      for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
      db->Close().PermitUncheckedError();
      db.reset();
    }
    closed->Notify();
  }

  std::shared_ptr<ErrorListener> listener;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* runs = nullptr;
  rocksdb::ColumnFamilyHandle* runs_by_time = nullptr;
  rocksdb::ColumnFamilyHandle* catalog = nullptr;
  rocksdb::ColumnFamilyHandle* models = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* decisions = nullptr;
  uint64_t run_count_at_open = 0;
  // Notified once the instance is closed and its LOCK file released, whichever thread let go of it last.
  std::shared_ptr<absl::Notification> closed = std::make_shared<absl::Notification>();
  // Set when a write on this instance failed: it must not be written again (see WritableInstanceLocked).
  std::atomic<bool> write_failed{false};

  bool Healthy() const { return !write_failed.load() && !listener->error_seen(); }
};

// Applies the steps from schema `stored` up to kSchemaVersion (CheckSchemaVersion found them), each as one synced
// WriteBatch that also moves the stamp on.
absl::Status MigrateForward(const Instance& instance, uint32_t stored, const std::string& path,
                            std::span<const SchemaMigration> migrations) {
  const SchemaMigrationTarget target{instance.db.get(), instance.runs, instance.runs_by_time, instance.catalog,
                                     instance.models,   instance.meta, instance.decisions};
  rocksdb::WriteOptions sync;
  sync.sync = true;
  for (uint32_t v = stored; v < kSchemaVersion; ++v) {
    const SchemaMigration* step = FindMigration(migrations, v);
    if (step == nullptr) return absl::InternalError(absl::StrCat("no migration from schema ", v));
    rocksdb::WriteBatch batch;
    if (absl::Status st = step->apply(target, &batch); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("migrating ", path, " from schema ", v, " to ", v + 1, " (",
                                                  step->summary, "): ", st.message()));
    }
    STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch.Put(instance.meta, kSchemaVersionKey, absl::StrCat(v + 1)),
                                            "stamping the migrated schema version"));
    STORAGE_RETURN_IF_ERROR(FromRocksStatus(instance.db->Write(sync, &batch),
                                            absl::StrCat("writing the migration of ", path, " to schema ", v + 1)));
  }
  return absl::OkStatus();
}

// Every stored run's summary made again with options.run_summary (its time-index entry's value), unless the store
// is stamped with options.run_summary_format already; then that format is stamped. Runs as the store opens, before
// anything else may write to it (or, when reopened after a write error, under its write lock): one sequential pass
// over the runs, written in batches without fsync and the new stamp with the last. An older stamp is removed first
// (synced), so that a pass that stops part way (a crash, a full disk) leaves no stamp over summaries of mixed formats
// and any later open, by this build or one of the older format, makes them all again.
absl::Status MakeRunSummaries(const Instance& db, const StoreOptions& options) {
  if (!options.run_summary) return absl::OkStatus();
  std::string stamped;
  rocksdb::Status s = db.db->Get(rocksdb::ReadOptions(), db.meta, kRunSummaryFormatKey, &stamped);
  if (s.ok() && stamped == options.run_summary_format) return absl::OkStatus();
  if (!s.ok() && !s.IsNotFound()) return FromRocksStatus(s, "reading the run summaries' format");
  rocksdb::WriteOptions sync;
  sync.sync = true;
  if (s.ok()) {
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(db.db->Delete(sync, db.meta, kRunSummaryFormatKey), "removing the run summaries' format"));
  }
  rocksdb::ReadOptions read;
  read.fill_cache = false;
  read.readahead_size = 2 * kMiB;
  std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator(read, db.runs));
  rocksdb::WriteBatch batch;
  std::string key;
  v1::RunReport run;
  constexpr size_t kRunsPerBatch = 4096;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    STORAGE_RETURN_IF_ERROR(ParseStoredRun(it->value(), it->key(), &run));
    EncodeTimeKeyInto(run.time_unix_ms(), run.run_id(), &key);
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(batch.Put(db.runs_by_time, key, options.run_summary(run)), "batching a run summary"));
    if (batch.Count() >= kRunsPerBatch) {
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(db.db->Write(rocksdb::WriteOptions(), &batch), "writing run summaries"));
      batch.Clear();
    }
  }
  STORAGE_RETURN_IF_ERROR(FromRocksStatus(it->status(), "reading runs to summarise"));
  STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch.Put(db.meta, kRunSummaryFormatKey, options.run_summary_format),
                                          "stamping the run summaries' format"));
  return FromRocksStatus(db.db->Write(sync, &batch), "writing run summaries");
}

// Opens the store folder: schema probe, RocksDB open with every column family, schema stamp, run counter.
absl::StatusOr<std::unique_ptr<Instance>> OpenInstance(const StoreOptions& options, rocksdb::Env* env,
                                                       const std::shared_ptr<rocksdb::Cache>& cache,
                                                       std::span<const SchemaMigration> migrations) {
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", options.path, ": ", ec.message()));

  auto instance = std::make_unique<Instance>();
  instance->listener = std::make_shared<ErrorListener>();
  const rocksdb::DBOptions db_options = MakeDbOptions(options, env, instance->listener);
  rocksdb::Env* file_env = env != nullptr ? env : rocksdb::Env::Default();
  std::vector<std::string> existing;
  if (file_env->FileExists(options.path + "/CURRENT").ok()) {
    STORAGE_RETURN_IF_ERROR(FromRocksStatus(rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing),
                                            absl::StrCat("listing column families of ", options.path)));
    STORAGE_RETURN_IF_ERROR(ProbeSchema(db_options, options.path, existing, migrations));
  }

  const rocksdb::ColumnFamilyOptions plain = MakeCfOptions(options, cache, /*point_lookups=*/false);
  const rocksdb::ColumnFamilyOptions lookups = MakeCfOptions(options, cache, /*point_lookups=*/true);
  // The decision log is written at the rate of SelectAccelerator answers and read rarely (joins past the writer's
  // memory, quality windows): its flushes are not compressed, and its last level takes LZ4, not ZSTD, so the log
  // costs the request-serving CPUs as little as possible. Its size is bounded by --decision_log_max_mb anyway.
  rocksdb::ColumnFamilyOptions decisions = lookups;
  decisions.compression = rocksdb::kNoCompression;
  decisions.bottommost_compression = PickCompression({rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  // Order matters: the handles are picked out by position below.
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
      {rocksdb::kDefaultColumnFamilyName, plain},
      {kRunsCf, lookups},
      {kRunsByTimeCf, plain},
      {kCatalogCf, lookups},
      {kModelsCf, plain},
      {kMetaCf, lookups},
      // Added after schema 1 was released: an older store gets it on its first open here (create_missing), and
      // an older build opens it as a family it does not know, so no schema step is needed either way.
      {kDecisionsCf, decisions},
  };
  // Families this build does not know must still be opened (RocksDB insists); they can only come from a build with
  // the same schema version, so they are kept as they are.
  for (const std::string& name : existing) {
    const bool known = std::any_of(descriptors.begin(), descriptors.end(),
                                   [&](const rocksdb::ColumnFamilyDescriptor& d) { return d.name == name; });
    if (!known) descriptors.emplace_back(name, plain);
  }
  rocksdb::DB* raw = nullptr;
  STORAGE_RETURN_IF_ERROR(
      FromRocksStatus(rocksdb::DB::Open(db_options, options.path, descriptors, &instance->handles, &raw),
                      absl::StrCat("opening ", options.path)));
  instance->db.reset(raw);
  instance->runs = instance->handles[1];
  instance->runs_by_time = instance->handles[2];
  instance->catalog = instance->handles[3];
  instance->models = instance->handles[4];
  instance->meta = instance->handles[5];
  instance->decisions = instance->handles[6];

  absl::StatusOr<std::optional<uint32_t>> stored = ReadSchemaVersion(instance->db.get(), instance->meta);
  if (!stored.ok()) return stored.status();
  if (stored->has_value()) {
    STORAGE_RETURN_IF_ERROR(CheckSchemaVersion(**stored, options.path, migrations));
    STORAGE_RETURN_IF_ERROR(MigrateForward(*instance, **stored, options.path, migrations));
  } else {
    // A fresh store (or one whose first open crashed before this point): stamp it, durably.
    rocksdb::WriteOptions sync;
    sync.sync = true;
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(instance->db->Put(sync, instance->meta, kSchemaVersionKey, absl::StrCat(kSchemaVersion)),
                        "stamping the schema version"));
  }

  std::string count;
  rocksdb::Status s = instance->db->Get(rocksdb::ReadOptions(), instance->meta, kRunCountKey, &count);
  if (s.ok()) {
    if (!absl::SimpleAtoi(count, &instance->run_count_at_open)) {
      return absl::DataLossError(absl::StrCat("unreadable run count \"", count, "\" in meta"));
    }
  } else if (!s.IsNotFound()) {
    return FromRocksStatus(s, "reading the run count");
  }
  STORAGE_RETURN_IF_ERROR(MakeRunSummaries(*instance, options));
  return instance;
}

// At most `parts` - 1 keys that split the family `family` (runs or runs_by_time) into ranges of about equal bytes on
// disk, ascending: each is just after the largest key of a table file, at the file boundary (in the order of the
// files' largest keys) nearest to the next share of the bytes. The files of levels 1 and below are used (each level's
// files are disjoint, and they hold most of a large store); level 0's only when there are no others: its files were
// flushed from the memtable, and with run ids in no order each may span almost every key. Files of different levels
// overlap, so the split is approximate, never wrong: the ranges between the keys cover every key. None for one part,
// or while the runs are all in the memtable.
std::vector<std::string> KeySplits(Instance& db, rocksdb::ColumnFamilyHandle* family, size_t parts) {
  std::vector<std::string> splits;
  if (parts <= 1) return splits;
  rocksdb::ColumnFamilyMetaData meta;
  db.db->GetColumnFamilyMetaData(family, &meta);
  std::vector<std::pair<std::string, uint64_t>> files;  // largest key, bytes
  for (bool level0 : {false, true}) {
    for (const rocksdb::LevelMetaData& level : meta.levels) {
      if ((level.level == 0) != level0) continue;
      for (const rocksdb::SstFileMetaData& file : level.files) files.emplace_back(file.largestkey, file.size);
    }
    if (!files.empty()) break;
  }
  std::sort(files.begin(), files.end());
  std::vector<double> ends(files.size());  // bytes up to the end of each file
  double total = 0;
  for (size_t i = 0; i < files.size(); ++i) ends[i] = total += static_cast<double>(files[i].second);
  size_t previous = 0;  // boundaries taken are after files [0, previous)
  for (size_t k = 1; k < parts; ++k) {
    const double share = total * static_cast<double>(k) / static_cast<double>(parts);
    size_t nearest = files.size();
    for (size_t i = previous; i + 1 < files.size(); ++i) {
      if (nearest == files.size() || std::abs(ends[i] - share) < std::abs(ends[nearest] - share)) nearest = i;
    }
    if (nearest == files.size()) break;
    std::string after = files[nearest].first + '\0';  // the smallest key after it: the file's last run stays
    if (splits.empty() || after > splits.back()) splits.push_back(std::move(after));
    previous = nearest + 1;
  }
  return splits;
}

// Calls `scan(part)` for parts 0 .. count - 1 at once: part 0 on the calling thread, each other on a thread of its own
// (inheriting the caller's nice level), or on the calling thread after part 0 when no thread can be started (a
// process or memory limit). Returns once every part has.
void ScanPartsAtOnce(size_t count, const std::function<void(size_t)>& scan) {
  std::vector<std::thread> threads;
  threads.reserve(count > 0 ? count - 1 : 0);
  size_t part = 1;
  for (; part < count; ++part) {
    try {
      threads.emplace_back(scan, part);
    } catch (const std::system_error&) {
      break;
    }
  }
  scan(0);
  for (; part < count; ++part) scan(part);
  for (std::thread& t : threads) t.join();
}

class RocksDbTelemetryStore final : public TelemetryStore {
 public:
  RocksDbTelemetryStore(const StoreOptions& options, rocksdb::Env* env, std::shared_ptr<rocksdb::Cache> cache,
                        std::span<const SchemaMigration> migrations, std::shared_ptr<Instance> instance)
      : options_(options),
        env_(env),
        cache_(std::move(cache)),
        migrations_(migrations),
        run_count_(instance->run_count_at_open),
        instance_(std::move(instance)) {
    run_write_options_.sync = options.sync_writes;
    // Catalogue, model and meta writes are rare and operator-visible (a pin, a promoted model): always fsynced.
    control_write_options_.sync = true;
    // The decision log is a log, not a promise (docs/OPERATIONS.md): never fsynced, so it cannot slow a run's ack.
    decision_write_options_.sync = false;
    // Runs applied from a source that holds them durably (cluster mode's stream), with the position in that source
    // in the same batch: a write lost to a power cut takes its position with it and is applied again. Not fsynced;
    // a fresh replica catches up about 1.4x faster (bench/results/2026-12-07-cluster-decisions.md).
    replay_write_options_.sync = false;
  }

  absl::StatusOr<std::vector<AppendResult>> AppendRuns(const std::vector<const v1::RunReport*>& runs) override {
    return Append(Unprepared(runs), nullptr, nullptr);
  }

  absl::StatusOr<std::vector<AppendResult>> AppendRunsWithMeta(const std::vector<const v1::RunReport*>& runs,
                                                               const std::string& meta_key,
                                                               const std::string& meta_value) override {
    return AppendPreparedRuns(Unprepared(runs), &meta_key, &meta_value);
  }

  absl::StatusOr<std::vector<AppendResult>> AppendPreparedRuns(const std::vector<PreparedRun>& runs,
                                                               const std::string* meta_key,
                                                               const std::string* meta_value) override {
    if (meta_key != nullptr) {
      if (meta_value == nullptr) return absl::InvalidArgumentError("meta_value is null");
      if (absl::Status st = CheckMetaKey(*meta_key); !st.ok()) return st;
    }
    return Append(runs, meta_key, meta_value);
  }

  static std::vector<PreparedRun> Unprepared(const std::vector<const v1::RunReport*>& runs) {
    std::vector<PreparedRun> out(runs.size());
    for (size_t i = 0; i < runs.size(); ++i) out[i].run = runs[i];
    return out;
  }

  // AppendRuns; with `meta_key` non-null, also writes that meta entry in the same batch, even with no run stored.
  absl::StatusOr<std::vector<AppendResult>> Append(const std::vector<PreparedRun>& runs, const std::string* meta_key,
                                                   const std::string* meta_value) {
    std::vector<AppendResult> results(runs.size(), AppendResult::kDuplicate);
    if (runs.empty() && meta_key == nullptr) return results;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (runs[i].run == nullptr) return absl::InvalidArgumentError(absl::StrCat("runs[", i, "] is null"));
      if (runs[i].run->run_id().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("runs[", i, "].run_id is empty"));
      }
    }

    // Indices of the first occurrence of each run_id in this call; later repeats stay kDuplicate.
    std::vector<size_t> firsts;
    firsts.reserve(runs.size());
    {
      absl::flat_hash_set<std::string_view> seen;
      seen.reserve(runs.size());
      for (size_t i = 0; i < runs.size(); ++i) {
        if (seen.insert(runs[i].run->run_id()).second) firsts.push_back(i);
      }
    }
    std::vector<rocksdb::Slice> keys;
    keys.reserve(firsts.size());
    for (size_t i : firsts) keys.push_back(ToSlice(runs[i].run->run_id()));
    std::vector<rocksdb::PinnableSlice> existing(firsts.size());
    std::vector<rocksdb::Status> lookups(firsts.size());
    // Made before the lock, so that the writers queued behind this one do not wait for them (a duplicate's is
    // wasted); a caller that made one already is not asked again.
    std::vector<std::string> summaries(options_.run_summary ? firsts.size() : 0);
    for (size_t k = 0; k < summaries.size(); ++k) {
      if (runs[firsts[k]].summary.empty()) summaries[k] = options_.run_summary(*runs[firsts[k]].run);
    }

    // Check-then-write under one lock: no other writer can store one of these run_ids in between.
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::shared_ptr<Instance>> instance = WritableInstanceLocked();
    if (!instance.ok()) return instance.status();
    Instance& db = **instance;
    db.db->MultiGet(rocksdb::ReadOptions(), db.runs, keys.size(), keys.data(), existing.data(), lookups.data());

    batch_.Clear();
    uint64_t stored = 0;
    for (size_t k = 0; k < firsts.size(); ++k) {
      if (lookups[k].ok()) continue;  // already stored by an earlier call
      if (!lookups[k].IsNotFound()) return FromRocksStatus(lookups[k], "checking run_id for duplicates");
      const PreparedRun& prepared = runs[firsts[k]];
      const v1::RunReport& run = *prepared.run;
      rocksdb::Slice value = ToSlice(prepared.bytes);
      if (prepared.bytes.empty()) {
        if (!run.SerializeToString(&value_buffer_)) {
          return absl::InternalError(absl::StrCat("cannot serialize run ", run.run_id()));
        }
        value = value_buffer_;
      }
      rocksdb::Slice summary;
      if (!summaries.empty())
        summary = prepared.summary.empty() ? rocksdb::Slice(summaries[k]) : ToSlice(prepared.summary);
      EncodeTimeKeyInto(run.time_unix_ms(), run.run_id(), &key_buffer_);
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Put(db.runs, keys[k], value), "batching a run"));
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Put(db.runs_by_time, key_buffer_, summary), "batching a run"));
      results[firsts[k]] = AppendResult::kStored;
      ++stored;
    }
    if (meta_key != nullptr) {
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Put(db.meta, *meta_key, *meta_value), "batching"));
    } else if (stored == 0) {
      return results;
    }

    // The counter travels in the same batch, so it can never disagree with the runs after a crash.
    const uint64_t new_count = run_count_.load(std::memory_order_relaxed) + stored;
    if (stored > 0) {
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Put(db.meta, kRunCountKey, absl::StrCat(new_count)), "batching"));
    }
    STORAGE_RETURN_IF_ERROR(
        WriteLocked(db, meta_key != nullptr ? replay_write_options_ : run_write_options_, "appending runs"));
    run_count_.store(new_count, std::memory_order_release);
    return results;
  }

  absl::StatusOr<v1::RunReport> GetRun(const std::string& run_id) override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    rocksdb::PinnableSlice value;
    rocksdb::Status s = (*instance)->db->Get(rocksdb::ReadOptions(), (*instance)->runs, run_id, &value);
    if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("run ", run_id, " is not stored"));
    if (!s.ok()) return FromRocksStatus(s, "reading a run");
    v1::RunReport run;
    STORAGE_RETURN_IF_ERROR(ParseStoredRun(value, run_id, &run));
    return run;
  }

  absl::Status ScanRuns(int64_t min_time_unix_ms, const std::function<bool(const v1::RunReport&)>& fn) override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    Instance& db = **instance;
    ScopedSnapshot snapshot(db.db.get());
    const rocksdb::ReadOptions read = WholeScanReadOptions(snapshot);
    std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator(read, db.runs_by_time));
    std::string start;
    EncodeTimeKeyInto(min_time_unix_ms, "", &start);
    it->Seek(start);

    std::vector<std::string> ids;
    ids.reserve(kScanChunk);
    std::vector<rocksdb::Slice> keys;
    keys.reserve(kScanChunk);
    std::vector<rocksdb::PinnableSlice> values(kScanChunk);
    std::vector<rocksdb::Status> statuses(kScanChunk);
    v1::RunReport run;
    while (true) {
      ids.clear();
      for (; it->Valid() && ids.size() < kScanChunk; it->Next()) {
        const rocksdb::Slice key = it->key();
        if (key.size() <= 8) return absl::DataLossError("malformed key in runs_by_time");
        ids.emplace_back(key.data() + 8, key.size() - 8);
      }
      if (!it->status().ok()) return FromRocksStatus(it->status(), "scanning runs_by_time");
      if (ids.empty()) return absl::OkStatus();

      keys.clear();
      for (const std::string& id : ids) keys.push_back(id);
      for (rocksdb::PinnableSlice& value : values) value.Reset();
      db.db->MultiGet(read, db.runs, keys.size(), keys.data(), values.data(), statuses.data());
      for (size_t i = 0; i < ids.size(); ++i) {
        if (statuses[i].IsNotFound()) {
          return absl::DataLossError(absl::StrCat("runs_by_time names run ", ids[i], " but runs does not hold it"));
        }
        if (!statuses[i].ok()) return FromRocksStatus(statuses[i], "reading runs during a scan");
        STORAGE_RETURN_IF_ERROR(ParseStoredRun(values[i], ids[i], &run));
        if (!fn(run)) return absl::OkStatus();
      }
    }
  }

  absl::Status ScanRunsInParts(size_t parts, const std::function<bool(std::string_view)>& want,
                               const std::function<bool(size_t, const v1::RunReport&)>& fn) override {
    std::vector<v1::RunReport> runs(std::max<size_t>(parts, 1));  // each part's, reused run to run
    return ScanFamilyInParts(
        &Instance::runs, parts,
        [&](size_t part, const rocksdb::Iterator& it, Instance&, const rocksdb::ReadOptions&, absl::Status* status) {
          if (want && !want(it.key().ToStringView())) return true;
          *status = ParseStoredRun(it.value(), it.key(), &runs[part]);
          return status->ok() && fn(part, runs[part]);
        });
  }

  absl::Status ScanRunSummariesInParts(
      size_t parts, const std::function<std::string(const v1::RunReport&)>& summarize,
      const std::function<bool(size_t, int64_t, std::string_view, std::string_view)>& fn) override {
    if (!summarize) return absl::InvalidArgumentError("ScanRunSummariesInParts needs a summarize function");
    // Each part's, reused entry to entry: for a run stored without a summary, the run read and the summary made.
    struct Made {
      v1::RunReport run;
      rocksdb::PinnableSlice value;
      std::string summary;
    };
    std::vector<Made> made(std::max<size_t>(parts, 1));
    return ScanFamilyInParts(
        &Instance::runs_by_time, parts,
        [&](size_t part, const rocksdb::Iterator& it, Instance& db, const rocksdb::ReadOptions& read,
            absl::Status* status) {
          const rocksdb::Slice key = it.key();
          if (key.size() <= 8) {
            *status = absl::DataLossError("malformed key in runs_by_time");
            return false;
          }
          const std::string_view run_id(key.data() + 8, key.size() - 8);
          std::string_view summary = it.value().ToStringView();
          if (summary.empty()) {
            Made& m = made[part];
            m.value.Reset();
            rocksdb::Status s = db.db->Get(read, db.runs, ToSlice(run_id), &m.value);
            *status = s.IsNotFound() ? absl::DataLossError(absl::StrCat("runs_by_time names run ", std::string(run_id),
                                                                        " but runs does not hold it"))
                                     : FromRocksStatus(s, "reading a run to summarise");
            if (status->ok()) *status = ParseStoredRun(m.value, ToSlice(run_id), &m.run);
            if (!status->ok()) return false;
            m.summary = summarize(m.run);
            summary = m.summary;
          }
          return fn(part, DecodeTime(key), run_id, summary);
        });
  }

  uint64_t RunCount() override { return run_count_.load(std::memory_order_acquire); }

  uint64_t ApproximateBytes() override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return 0;
    rocksdb::DB& db = *(*instance)->db;
    uint64_t total = 0;
    uint64_t value = 0;
    if (db.GetAggregatedIntProperty(rocksdb::DB::Properties::kLiveSstFilesSize, &value)) total += value;
    // Memtables are not added: what they hold is already on disk in the WAL, and their size is mostly the arena
    // RocksDB reserves up front, which would make even an empty store look half a megabyte big.
    rocksdb::VectorLogPtr wal_files;
    if (db.GetSortedWalFiles(wal_files).ok()) {
      for (const std::unique_ptr<rocksdb::LogFile>& wal : wal_files) total += wal->SizeFileBytes();
    }
    return total;
  }

  absl::Status PutStrategy(const v1::Strategy& strategy) override {
    if (strategy.id().empty()) return absl::InvalidArgumentError("strategy.id is empty");
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::shared_ptr<Instance>> instance = WritableInstanceLocked();
    if (!instance.ok()) return instance.status();
    batch_.Clear();
    if (!strategy.SerializeToString(&value_buffer_)) return absl::InternalError("cannot serialize strategy");
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(batch_.Put((*instance)->catalog, strategy.id(), value_buffer_), "batching"));
    return WriteLocked(**instance, control_write_options_, "storing a strategy");
  }

  absl::StatusOr<std::vector<v1::Strategy>> ListStrategies() override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    std::vector<v1::Strategy> strategies;
    std::unique_ptr<rocksdb::Iterator> it((*instance)->db->NewIterator(rocksdb::ReadOptions(), (*instance)->catalog));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      v1::Strategy& strategy = strategies.emplace_back();
      if (!strategy.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError(absl::StrCat("stored strategy ", it->key().ToString(), " does not parse"));
      }
    }
    if (!it->status().ok()) return FromRocksStatus(it->status(), "listing strategies");
    return strategies;
  }

  absl::Status PutModel(const ModelBlob& model) override {
    if (model.version == 0) return absl::InvalidArgumentError("model version 0 is reserved (statistics only)");
    if (model.info.version() != 0 && model.info.version() != model.version) {
      return absl::InvalidArgumentError(
          absl::StrCat("model info.version ", model.info.version(), " does not match version ", model.version));
    }
    v1::ModelVersionInfo info = model.info;
    info.set_version(model.version);
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::shared_ptr<Instance>> instance = WritableInstanceLocked();
    if (!instance.ok()) return instance.status();
    Instance& db = **instance;
    batch_.Clear();
    if (!info.SerializeToString(&value_buffer_)) return absl::InternalError("cannot serialize model info");
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(batch_.Put(db.models, ModelBlobKey(model.version), model.blob), "batching"));
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(batch_.Put(db.models, ModelInfoKey(model.version), value_buffer_), "batching"));
    return WriteLocked(db, control_write_options_, "storing a model");
  }

  absl::StatusOr<ModelBlob> GetModel(uint64_t version) override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    Instance& db = **instance;
    // Blob and metadata from the same point in time.
    ScopedSnapshot snapshot(db.db.get());
    rocksdb::ReadOptions read;
    read.snapshot = snapshot.get();
    ModelBlob model;
    model.version = version;
    rocksdb::Status s = db.db->Get(read, db.models, ModelBlobKey(version), &model.blob);
    if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("model version ", version, " is not stored"));
    if (!s.ok()) return FromRocksStatus(s, "reading a model blob");
    rocksdb::PinnableSlice info;
    s = db.db->Get(read, db.models, ModelInfoKey(version), &info);
    if (s.IsNotFound()) return absl::DataLossError(absl::StrCat("model version ", version, " has no metadata"));
    if (!s.ok()) return FromRocksStatus(s, "reading model metadata");
    if (!model.info.ParseFromArray(info.data(), static_cast<int>(info.size()))) {
      return absl::DataLossError(absl::StrCat("metadata of model version ", version, " does not parse"));
    }
    return model;
  }

  absl::StatusOr<std::vector<v1::ModelVersionInfo>> ListModels() override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    const std::string lower(1, kModelInfoTag);
    const std::string upper(1, static_cast<char>(kModelInfoTag + 1));
    const rocksdb::Slice upper_bound(upper);
    rocksdb::ReadOptions read;
    read.iterate_upper_bound = &upper_bound;
    std::vector<v1::ModelVersionInfo> infos;
    std::unique_ptr<rocksdb::Iterator> it((*instance)->db->NewIterator(read, (*instance)->models));
    for (it->Seek(lower); it->Valid(); it->Next()) {
      v1::ModelVersionInfo& info = infos.emplace_back();
      if (!info.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError("stored model metadata does not parse");
      }
    }
    if (!it->status().ok()) return FromRocksStatus(it->status(), "listing models");
    std::reverse(infos.begin(), infos.end());  // keys ascend by version; callers want newest first
    return infos;
  }

  static absl::Status CheckMetaKey(const std::string& key) {
    if (key.empty()) return absl::InvalidArgumentError("meta key is empty");
    if (key == kSchemaVersionKey || key == kRunCountKey || key == kRunSummaryFormatKey) {
      return absl::InvalidArgumentError(absl::StrCat("meta key \"", key, "\" is reserved for the store"));
    }
    return absl::OkStatus();
  }

  absl::Status PutMeta(const std::string& key, const std::string& value) override {
    if (absl::Status st = CheckMetaKey(key); !st.ok()) return st;
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::shared_ptr<Instance>> instance = WritableInstanceLocked();
    if (!instance.ok()) return instance.status();
    batch_.Clear();
    STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Put((*instance)->meta, key, value), "batching"));
    return WriteLocked(**instance, control_write_options_, "storing meta");
  }

  absl::StatusOr<std::optional<std::string>> GetMeta(const std::string& key) override {
    return GetOptional(&Instance::meta, key, "reading meta");
  }

  absl::Status PutDecisions(const std::vector<std::pair<std::string, std::string>>& records) override {
    if (records.empty()) return absl::OkStatus();
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::shared_ptr<Instance>> instance = WritableInstanceLocked();
    if (!instance.ok()) return instance.status();
    batch_.Clear();
    for (const auto& [key, value] : records) {
      if (key.empty()) return absl::InvalidArgumentError("decision id is empty");
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Put((*instance)->decisions, key, value), "batching"));
    }
    return WriteLocked(**instance, decision_write_options_, "logging decisions");
  }

  absl::StatusOr<std::optional<std::string>> GetDecision(const std::string& id) override {
    return GetOptional(&Instance::decisions, id, "reading a decision");
  }

  absl::Status ScanDecisions(const std::string& from, const std::string& to, bool reverse,
                             const std::function<bool(std::string_view, std::string_view)>& fn) override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    Instance& db = **instance;
    ScopedSnapshot snapshot(db.db.get());
    rocksdb::ReadOptions read;
    read.snapshot = snapshot.get();
    read.fill_cache = false;  // a report reads a window once; keep the blocks that serve joins cached
    const rocksdb::Slice lower(from);
    const rocksdb::Slice upper(to);
    read.iterate_lower_bound = &lower;
    if (!to.empty()) read.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator(read, db.decisions));
    if (reverse) {
      it->SeekToLast();
    } else {
      it->SeekToFirst();
    }
    for (; it->Valid(); reverse ? it->Prev() : it->Next()) {
      if (!fn(std::string_view(it->key().data(), it->key().size()),
              std::string_view(it->value().data(), it->value().size()))) {
        return absl::OkStatus();
      }
    }
    return FromRocksStatus(it->status(), "scanning decisions");
  }

  absl::Status DeleteDecisions(const std::string& from, const std::string& to) override {
    if (from >= to) return absl::OkStatus();
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::shared_ptr<Instance>> instance = WritableInstanceLocked();
    if (!instance.ok()) return instance.status();
    batch_.Clear();
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(batch_.DeleteRange((*instance)->decisions, from, to), "batching a decision range"));
    return WriteLocked(**instance, decision_write_options_, "pruning decisions");
  }

  absl::Status Flush() override {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    rocksdb::DB& db = *(*instance)->db;
    STORAGE_RETURN_IF_ERROR(FromRocksStatus(db.FlushWAL(/*sync=*/true), "syncing the WAL"));
    rocksdb::FlushOptions flush;
    flush.wait = true;
    return FromRocksStatus(db.Flush(flush, (*instance)->handles), "flushing memtables");
  }

  absl::StatusOr<uint64_t> Checkpoint(const std::string& dir) override {
    if (dir.empty()) return absl::InvalidArgumentError("backup folder is empty");
    std::error_code ec;
    if (std::filesystem::exists(dir, ec)) {
      return absl::AlreadyExistsError(absl::StrCat("backup folder ", dir, " exists; name a new one"));
    }
    const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("backup folder's parent ", parent.string(), " is not a folder"));
    }
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    // Counted before the checkpoint starts: every run acknowledged by then is in the copy (its own run count, kept
    // in the same batches as the runs, is exact).
    const uint64_t runs = run_count_.load(std::memory_order_acquire);
    rocksdb::Checkpoint* raw = nullptr;
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(rocksdb::Checkpoint::Create((*instance)->db.get(), &raw), "preparing a checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    // log_size_for_flush 0: always flush, so the copy needs no WAL replay and holds the unsynced decision log too.
    STORAGE_RETURN_IF_ERROR(
        FromRocksStatus(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0), "writing a checkpoint"));
    return runs;
  }

  absl::StatusOr<uint64_t> DeleteRunsBefore(int64_t cutoff_unix_ms, size_t max_runs) override {
    if (max_runs == 0) return absl::InvalidArgumentError("max_runs must be >= 1");
    std::string upper;
    EncodeTimeKeyInto(cutoff_unix_ms, "", &upper);
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::shared_ptr<Instance>> instance = WritableInstanceLocked();
    if (!instance.ok()) return instance.status();
    Instance& db = **instance;
    rocksdb::ReadOptions read;
    read.fill_cache = false;
    const rocksdb::Slice upper_bound(upper);
    read.iterate_upper_bound = &upper_bound;
    std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator(read, db.runs_by_time));
    batch_.Clear();
    uint64_t deleted = 0;
    for (it->SeekToFirst(); it->Valid() && deleted < max_runs; it->Next()) {
      const rocksdb::Slice key = it->key();
      if (key.size() <= 8) return absl::DataLossError("malformed key in runs_by_time");
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Delete(db.runs_by_time, key), "batching a deletion"));
      STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Delete(db.runs, rocksdb::Slice(key.data() + 8, key.size() - 8)),
                                              "batching a deletion"));
      ++deleted;
    }
    if (!it->status().ok()) return FromRocksStatus(it->status(), "scanning runs_by_time for retention");
    if (deleted == 0) return deleted;
    const uint64_t count = run_count_.load(std::memory_order_relaxed);
    const uint64_t new_count = count >= deleted ? count - deleted : 0;
    STORAGE_RETURN_IF_ERROR(FromRocksStatus(batch_.Put(db.meta, kRunCountKey, absl::StrCat(new_count)), "batching"));
    STORAGE_RETURN_IF_ERROR(WriteLocked(db, run_write_options_, "deleting old runs"));
    run_count_.store(new_count, std::memory_order_release);
    return deleted;
  }

 private:
  // Walks the family `family` on one snapshot in up to `parts` ranges of its keys at once (KeySplits,
  // ScanPartsAtOnce), one sequential pass each, calling `visit(part, it, db, read, &status)` on each entry (each
  // part's calls on one thread). `visit` returning false stops every part; an error it sets in `status` is returned.
  absl::Status ScanFamilyInParts(rocksdb::ColumnFamilyHandle* Instance::*family, size_t parts,
                                 const std::function<bool(size_t, const rocksdb::Iterator&, Instance&,
                                                          const rocksdb::ReadOptions&, absl::Status*)>& visit) {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    Instance& db = **instance;
    ScopedSnapshot snapshot(db.db.get());
    const std::vector<std::string> splits = KeySplits(db, db.*family, parts);
    std::atomic<bool> stop{false};
    std::vector<absl::Status> status(splits.size() + 1);
    const auto scan = [&](size_t part) {
      rocksdb::ReadOptions read = WholeScanReadOptions(snapshot);
      // One sequential pass over the part's table files: read ahead in large steps.
      read.readahead_size = 2 * kMiB;
      rocksdb::Slice upper;
      if (part < splits.size()) {
        upper = splits[part];
        read.iterate_upper_bound = &upper;
      }
      std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator(read, db.*family));
      for (part == 0 ? it->SeekToFirst() : it->Seek(splits[part - 1]);
           it->Valid() && !stop.load(std::memory_order_relaxed); it->Next()) {
        if (!visit(part, *it, db, read, &status[part])) {
          stop.store(true, std::memory_order_relaxed);
          return;
        }
      }
      status[part] = FromRocksStatus(it->status(), "scanning the store");
    };
    ScanPartsAtOnce(splits.size() + 1, scan);
    for (const absl::Status& st : status) STORAGE_RETURN_IF_ERROR(st);
    return absl::OkStatus();
  }

  // A point read of `key` in the instance's family `family`; nullopt if absent.
  absl::StatusOr<std::optional<std::string>> GetOptional(rocksdb::ColumnFamilyHandle* Instance::*family,
                                                         const std::string& key, std::string_view what) {
    absl::StatusOr<std::shared_ptr<Instance>> instance = Acquire();
    if (!instance.ok()) return instance.status();
    std::string value;
    rocksdb::Status s = (*instance)->db->Get(rocksdb::ReadOptions(), (**instance).*family, key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocksStatus(s, what);
    return std::optional<std::string>(std::move(value));
  }

  absl::StatusOr<std::shared_ptr<Instance>> Acquire() {
    absl::MutexLock lock(&instance_mu_);
    if (instance_ == nullptr) {
      return absl::UnavailableError(absl::StrCat("store ", options_.path, " is reopening after a write error"));
    }
    return instance_;
  }

  // The instance to write to. After a failed write the current instance is never written again: RocksDB 7.8 keeps
  // the failed WAL writer, so even after DB::Resume() the next write reuses it (and Debian's assert-enabled build
  // aborts). Instead the instance is closed and the folder reopened: WAL recovery drops any torn record of the
  // failed batch, the counter is reloaded from meta, and writing resumes on a fresh WAL once the cause (e.g. a full
  // disk) has gone. Until then every write returns UNAVAILABLE, which is what the client retries on.
  absl::StatusOr<std::shared_ptr<Instance>> WritableInstanceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    std::shared_ptr<Instance> current;
    {
      absl::MutexLock lock(&instance_mu_);
      current = instance_;
      if (current != nullptr && current->Healthy()) return current;
      instance_.reset();  // new readers now get UNAVAILABLE instead of the failed instance
    }
    if (current != nullptr) failed_closed_ = current->closed;
    current.reset();
    // RocksDB's LOCK file admits one instance per folder: wait until in-flight reads have let go of the failed
    // instance and it is closed. A long scan may hold it; the write fails and the next one waits again.
    if (failed_closed_ != nullptr) {
      if (!failed_closed_->WaitForNotificationWithTimeout(absl::Seconds(5))) {
        return absl::UnavailableError("store is waiting for reads of the failed RocksDB instance to finish");
      }
      failed_closed_.reset();
    }
    absl::StatusOr<std::unique_ptr<Instance>> reopened = OpenInstance(options_, env_, cache_, migrations_);
    if (!reopened.ok()) return reopened.status();
    std::shared_ptr<Instance> fresh = std::move(*reopened);
    run_count_.store(fresh->run_count_at_open, std::memory_order_release);
    absl::MutexLock lock(&instance_mu_);
    instance_ = fresh;
    return fresh;
  }

  // Writes batch_ to `db`.
  absl::Status WriteLocked(Instance& db, const rocksdb::WriteOptions& write_options, std::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    rocksdb::Status s = db.db->Write(write_options, &batch_);
    if (!s.ok()) {
      db.write_failed.store(true);
      return FromRocksStatus(s, what);
    }
    return absl::OkStatus();
  }

  const StoreOptions options_;
  rocksdb::Env* const env_;  // nullptr = rocksdb::Env::Default()
  const std::shared_ptr<rocksdb::Cache> cache_;
  const std::span<const SchemaMigration> migrations_;  // for reopening after a write error
  rocksdb::WriteOptions run_write_options_;
  rocksdb::WriteOptions control_write_options_;
  rocksdb::WriteOptions decision_write_options_;
  rocksdb::WriteOptions replay_write_options_;
  // Written under write_mu_, read lock-free by RunCount().
  std::atomic<uint64_t> run_count_;

  // Serialises every write, so AppendRuns' duplicate check and its write are one step.
  absl::Mutex write_mu_;
  // Reused across calls so an append allocates per call, not per run.
  rocksdb::WriteBatch batch_ ABSL_GUARDED_BY(write_mu_);
  std::string value_buffer_ ABSL_GUARDED_BY(write_mu_);
  std::string key_buffer_ ABSL_GUARDED_BY(write_mu_);
  std::shared_ptr<absl::Notification> failed_closed_ ABSL_GUARDED_BY(write_mu_);

  // Guards the pointer only; operations run on their own shared_ptr copy without holding it.
  absl::Mutex instance_mu_ ABSL_ACQUIRED_AFTER(write_mu_);
  std::shared_ptr<Instance> instance_ ABSL_GUARDED_BY(instance_mu_);
};

}  // namespace

std::string EncodeTimeKey(int64_t time_unix_ms, std::string_view run_id) {
  std::string key;
  EncodeTimeKeyInto(time_unix_ms, run_id, &key);
  return key;
}

std::string ModelBlobKey(uint64_t version) { return ModelKey(kModelBlobTag, version); }
std::string ModelInfoKey(uint64_t version) { return ModelKey(kModelInfoTag, version); }

absl::Status FromRocksStatus(const rocksdb::Status& status, std::string_view what) {
  if (status.ok()) return absl::OkStatus();
  // Not StrCat: Debian's Abseil is built without std::string_view interop.
  std::string message(what);
  message.append(": ").append(status.ToString());
  switch (status.code()) {
    case rocksdb::Status::kIOError:  // includes NoSpace: the caller may retry once the disk is back
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain: return absl::UnavailableError(std::move(message));
    case rocksdb::Status::kCorruption: return absl::DataLossError(std::move(message));
    default: return absl::InternalError(std::move(message));
  }
}

std::span<const SchemaMigration> SchemaMigrations() { return kMigrations; }

absl::StatusOr<std::unique_ptr<TelemetryStore>> OpenRocksDbStore(const StoreOptions& options, rocksdb::Env* env,
                                                                 std::span<const SchemaMigration> migrations) {
  if (options.path.empty()) return absl::InvalidArgumentError("StoreOptions.path is empty");
  std::shared_ptr<rocksdb::Cache> cache;
  if (options.block_cache_mb > 0) cache = rocksdb::NewLRUCache(options.block_cache_mb * kMiB);
  absl::StatusOr<std::unique_ptr<Instance>> instance = OpenInstance(options, env, cache, migrations);
  if (!instance.ok()) return instance.status();
  return std::unique_ptr<TelemetryStore>(new RocksDbTelemetryStore(options, env, std::move(cache), migrations,
                                                                   std::shared_ptr<Instance>(std::move(*instance))));
}

absl::StatusOr<std::unique_ptr<TelemetryStore>> OpenRocksDbStore(const StoreOptions& options, rocksdb::Env* env) {
  return OpenRocksDbStore(options, env, SchemaMigrations());
}

absl::StatusOr<std::unique_ptr<TelemetryStore>> TelemetryStore::Open(const StoreOptions& options) {
  return OpenRocksDbStore(options, nullptr);
}

}  // namespace accelsel::storage
