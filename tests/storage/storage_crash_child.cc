// Writer process for the storage crash test: appends batches to a store until it is killed, and after each
// AppendRuns returns OK writes the batch's run_ids (stored or duplicate: both mean "durable") to an ack file.
// Usage: storage_crash_child STORE_DIR ACK_FILE SYNC(0|1) ID_PREFIX
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/telemetry_store.h"

namespace {

constexpr int kRunsPerBatch = 40;
constexpr int kResentPerBatch = 5;  // ids of the previous batch sent again, as a node does after a broken stream

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s STORE_DIR ACK_FILE SYNC(0|1) ID_PREFIX\n", argv[0]);
    return 2;
  }
  accelsel::storage::StoreOptions options;
  options.path = argv[1];
  options.sync_writes = std::string(argv[3]) == "1";
  const std::string prefix = argv[4];
  auto store = accelsel::storage::TelemetryStore::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 3;
  }
  const int ack_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
  if (ack_fd < 0) return 4;

  std::vector<accelsel::v1::RunReport> batch(kRunsPerBatch + kResentPerBatch);
  std::vector<const accelsel::v1::RunReport*> pointers;
  for (const auto& run : batch) pointers.push_back(&run);
  std::string acks;
  for (int b = 0; b < 1000000; ++b) {
    for (int i = 0; i < kRunsPerBatch + kResentPerBatch; ++i) {
      accelsel::v1::RunReport& run = batch[i];
      const int batch_no = i < kRunsPerBatch ? b : b - 1;
      const int index = i < kRunsPerBatch ? i : i - kRunsPerBatch;
      run.set_run_id(absl::StrCat(prefix, "-", batch_no < 0 ? 0 : batch_no, "-", index));
      run.set_node_id("crash-node");
      run.set_time_unix_ms(1700000000000 + b * 100 + index);
      run.set_strategy_id("vllm");
      run.set_status(accelsel::v1::RUN_STATUS_OK);
      run.mutable_metrics()->set_e2e_latency_ms(10.0 + index);
    }
    auto results = (*store)->AppendRuns(pointers);
    if (!results.ok()) {
      std::fprintf(stderr, "append: %s\n", results.status().ToString().c_str());
      return 5;
    }
    acks.clear();
    for (const auto& run : batch) absl::StrAppend(&acks, run.run_id(), "\n");
    if (!WriteAll(ack_fd, acks)) return 6;
  }
  return 0;
}
