// FaultEnv: the one fault-injecting RocksDB Env of the tests. It can fail WAL appends on demand (a disk that has
// filled up) and slow down every file open (a store that takes long to open); both are off until a test asks.
#ifndef ACCELSEL_TESTS_TEST_UTIL_FAULT_ENV_H_
#define ACCELSEL_TESTS_TEST_UTIL_FAULT_ENV_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rocksdb/env.h"

namespace accelsel::testing {

// The message of every injected failure (a RocksDB NoSpace status).
inline constexpr char kInjectedDiskFull[] = "disk full (injected by the test)";

class FaultEnv : public rocksdb::EnvWrapper {
 public:
  // `open_delay` is slept before every random-access and sequential file is opened.
  explicit FaultEnv(absl::Duration open_delay = absl::ZeroDuration())
      : rocksdb::EnvWrapper(rocksdb::Env::Default()), open_delay_(open_delay) {}
  const char* Name() const override { return "FaultEnv"; }

  // While set, every append to a WAL file (*.log) fails with NoSpace(kInjectedDiskFull).
  std::atomic<bool> fail_wal_appends{false};
  // Appends refused so far: a test checks that its fault was hit at all.
  std::atomic<int> wal_failures{0};

  rocksdb::Status NewWritableFile(const std::string& name, std::unique_ptr<rocksdb::WritableFile>* result,
                                  const rocksdb::EnvOptions& options) override {
    rocksdb::Status s = target()->NewWritableFile(name, result, options);
    if (s.ok() && name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0) {
      *result = std::make_unique<WalFile>(std::move(*result), this);
    }
    return s;
  }
  rocksdb::Status NewRandomAccessFile(const std::string& f, std::unique_ptr<rocksdb::RandomAccessFile>* r,
                                      const rocksdb::EnvOptions& o) override {
    absl::SleepFor(open_delay_);
    return EnvWrapper::NewRandomAccessFile(f, r, o);
  }
  rocksdb::Status NewSequentialFile(const std::string& f, std::unique_ptr<rocksdb::SequentialFile>* r,
                                    const rocksdb::EnvOptions& o) override {
    absl::SleepFor(open_delay_);
    return EnvWrapper::NewSequentialFile(f, r, o);
  }

 private:
  class WalFile : public rocksdb::WritableFileWrapper {
   public:
    WalFile(std::unique_ptr<rocksdb::WritableFile> file, FaultEnv* env)
        : rocksdb::WritableFileWrapper(file.get()), file_(std::move(file)), env_(env) {}
    rocksdb::Status Append(const rocksdb::Slice& data) override {
      if (env_->fail_wal_appends.load()) return Fail();
      return rocksdb::WritableFileWrapper::Append(data);
    }
    rocksdb::Status Append(const rocksdb::Slice& data, const rocksdb::DataVerificationInfo& info) override {
      if (env_->fail_wal_appends.load()) return Fail();
      return rocksdb::WritableFileWrapper::Append(data, info);
    }

   private:
    rocksdb::Status Fail() {
      ++env_->wal_failures;
      return rocksdb::Status::NoSpace(kInjectedDiskFull);
    }
    std::unique_ptr<rocksdb::WritableFile> file_;
    FaultEnv* env_;
  };

  const absl::Duration open_delay_;
};

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_TEST_UTIL_FAULT_ENV_H_
