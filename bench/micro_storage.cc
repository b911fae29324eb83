// Micro-benchmarks: TelemetryStore::AppendRuns in batches beside raw RocksDB batched Put of the same records
// (run + time-index entry + run counter) with the same options — the store's options as RocksDB persisted them in
// the OPTIONS file, reloaded with LoadLatestOptions — and the same sync setting. Arguments: batch size, sync, and
// for the store whether it makes each run's training summary as the server's store does (server/training_set.h; the
// raw batches write none).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/synthetic.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/utilities/options_util.h"
#include "rocksdb/write_batch.h"
#include "server/training_set.h"
#include "storage/rocksdb_store.h"
#include "storage/telemetry_store.h"

namespace accelsel::bench {
namespace {

std::string TempDir(const std::string& what) {
  const char* base = std::getenv("ACCELSEL_BENCH_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/accelsel-micro-", getpid(), "-", what);
  std::filesystem::remove_all(dir);
  return dir;
}

std::vector<v1::RunReport> Reports(size_t n) {
  std::mt19937_64 rng(3);
  std::vector<v1::RunReport> out(n);
  v1::TaskContext c;
  for (size_t i = 0; i < n; ++i) {
    PooledContext(rng() % 5000, 5000, &c);
    SyntheticRun(c, static_cast<int>(rng() % 32), rng, &out[i]);
    out[i].set_time_unix_ms(1700000000000 + static_cast<int64_t>(i));
    out[i].set_schema_version(1);
  }
  return out;
}

void BM_StoreAppendRuns(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  storage::StoreOptions so;
  so.path = TempDir(absl::StrCat("store-", batch, "-", state.range(1)));
  so.sync_writes = state.range(1) != 0;
  if (state.range(2) != 0) server::UseTrainingSummaries(&so);
  auto store = storage::TelemetryStore::Open(so);
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  auto reports = Reports(batch);
  std::vector<const v1::RunReport*> ptrs;
  for (const auto& r : reports) ptrs.push_back(&r);
  uint64_t seq = 0;
  for (auto _ : state) {
    for (auto& r : reports) r.set_run_id(absl::StrCat("run-", seq++));
    auto res = (*store)->AppendRuns(ptrs);
    if (!res.ok()) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  store->reset();
  std::filesystem::remove_all(so.path);
}
BENCHMARK(BM_StoreAppendRuns)
    ->ArgsProduct({{64, 1024}, {0, 1}, {0, 1}})
    ->ArgNames({"batch", "sync", "summary"})
    ->MinTime(1.0);

void BM_RawRocksBatch(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  // Create the store once so RocksDB writes its OPTIONS file, then reopen the folder raw with those options.
  storage::StoreOptions so;
  so.path = TempDir(absl::StrCat("raw-", batch, "-", state.range(1)));
  so.sync_writes = state.range(1) != 0;
  {
    auto store = storage::TelemetryStore::Open(so);
    if (!store.ok()) {
      state.SkipWithError(std::string(store.status().message()).c_str());
      return;
    }
  }
  rocksdb::ConfigOptions config;
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  if (!rocksdb::LoadLatestOptions(config, so.path, &db_options, &cfs).ok()) {
    state.SkipWithError("LoadLatestOptions failed");
    return;
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(db_options, so.path, cfs, &handles, &raw).ok()) {
    state.SkipWithError("open failed");
    return;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle *runs = nullptr, *by_time = nullptr, *meta = nullptr;
  for (size_t i = 0; i < cfs.size(); ++i) {
    if (cfs[i].name == storage::kRunsCf) runs = handles[i];
    if (cfs[i].name == storage::kRunsByTimeCf) by_time = handles[i];
    if (cfs[i].name == storage::kMetaCf) meta = handles[i];
  }
  rocksdb::WriteOptions wo;
  wo.sync = so.sync_writes;
  auto reports = Reports(batch);
  rocksdb::WriteBatch wb;
  std::string value;
  uint64_t seq = 0;
  for (auto _ : state) {
    wb.Clear();
    for (auto& r : reports) {
      r.set_run_id(absl::StrCat("run-", seq++));
      r.SerializeToString(&value);
      wb.Put(runs, r.run_id(), value);
      wb.Put(by_time, storage::EncodeTimeKey(r.time_unix_ms(), r.run_id()), rocksdb::Slice());
    }
    wb.Put(meta, storage::kRunCountKey, absl::StrCat(seq));
    if (!db->Write(wo, &wb).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  db.reset();
  std::filesystem::remove_all(so.path);
}
BENCHMARK(BM_RawRocksBatch)->ArgsProduct({{64, 1024}, {0, 1}})->ArgNames({"batch", "sync"})->MinTime(1.0);

}  // namespace
}  // namespace accelsel::bench
