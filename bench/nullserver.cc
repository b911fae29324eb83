// accelsel-nullserver: the floor the real server is measured against. Same gRPC scaffolding as accelsel-server
// (callback API, ServerBuilder settings, health, reflection, --listen), AcceleratorSelector doing no work:
//   --mode=null  SelectAccelerator copies a canned answer of real size; ReportRun acks every report DURABLE at once.
//   --mode=bare  ReportRun writes the same RocksDB batches as the real ingest (IngestQueue -> AppendRuns) and acks
//                after each write returns, without validation, catalogue, statistics or metrics.
// Both modes range acks as the real server does when the client asks (server/ack_queue.h).
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "bench/synthetic.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/ack_queue.h"
#include "server/arena_allocator.h"
#include "server/ingest_queue.h"
#include "server/options.h"
#include "storage/telemetry_store.h"
#include "util/version.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50061", "gRPC listen address host:port (port 0 = any free port)");
ABSL_FLAG(std::string, mode, "null", "null: no work at all; bare: ReportRun writes RocksDB batches, no validation");
ABSL_FLAG(std::string, data_dir, "./var/accelsel-bare", "RocksDB folder for --mode=bare");
ABSL_FLAG(bool, sync_writes, true, "fsync the WAL before acknowledging (--mode=bare), as accelsel-server");
ABSL_FLAG(int, candidates, 32, "Recommendations in the canned SelectAccelerator answer");
ABSL_FLAG(uint32_t, stream_window, 512, "Reports a ReportRun stream may have in flight, as accelsel-server");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "absl::Mutex deadlock detection (Debian's Abseil enables it by default; accelsel-server turns it off)");

namespace accelsel::bench {
namespace {

// Acks reports as `store` completes them; the same read/write/window discipline, message reuse and ack bursts
// as the real ReportRun reactor (server/services.cc).
class AckReactor final : public grpc::ServerBidiReactor<v1::RunReport, v1::RunAck>, public server::IngestSink {
 public:
  AckReactor(server::IngestQueue* queue, size_t window, bool ack_ranges)
      : queue_(queue), window_(window), incoming_(std::make_unique<v1::RunReport>()), acks_(ack_ranges) {
    StartRead(incoming_.get());
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Decide([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        reads_done_ = true;
        reading_ = false;
      });
      return;
    }
    const uint64_t seq = next_sequence_++;
    if (queue_ == nullptr) {
      Decide([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        reading_ = false;
        ++in_flight_;
        acks_.Add(seq, v1::RunAck::RESULT_DURABLE, incoming_->run_id());
      });
      return;
    }
    std::unique_ptr<v1::RunReport> report = std::move(incoming_);
    Decide([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      incoming_ = TakeSpareLocked();
      reading_ = false;
      ++in_flight_;
    });
    queue_->Submit(this, std::move(report), seq);
  }

  void OnCommitted(const absl::Status& status, std::vector<server::IngestItem>& items) override {
    Decide([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (!status.ok()) {
        failed_ = true;
        in_flight_ -= items.size();
      } else {
        for (server::IngestItem& item : items) {
          acks_.Add(
              item.sequence,
              item.result == storage::AppendResult::kStored ? v1::RunAck::RESULT_DURABLE : v1::RunAck::RESULT_DUPLICATE,
              item.report->run_id());
        }
      }
      for (server::IngestItem& item : items) {
        item.report->Clear();
        spare_.push_back(std::move(item.report));
      }
    });
  }

  void OnWriteDone(bool ok) override {
    Decide([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      writing_ = false;
      in_flight_ -= outgoing_reports_;
      if (!ok) broken_ = true;
    });
  }
  void OnCancel() override {
    Decide([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { broken_ = true; });
  }
  void OnDone() override { delete this; }

 private:
  std::unique_ptr<v1::RunReport> TakeSpareLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (spare_.empty()) return std::make_unique<v1::RunReport>();
    std::unique_ptr<v1::RunReport> r = std::move(spare_.back());
    spare_.pop_back();
    return r;
  }

  // Applies `change` under the lock, decides the next gRPC operations, issues them after unlocking. Each `change`
  // is a lambda declared ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_), so the compiler checks what it touches.
  template <typename Fn>
  void Decide(Fn&& change) {
    bool read = false, write = false, finish = false;
    grpc::WriteOptions write_options;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      change();
      if (finished_) return;
      if (broken_) in_flight_ -= acks_.Clear();
      if (!writing_ && !acks_.empty()) {
        writing_ = write = true;
        outgoing_reports_ = acks_.PopFront(&outgoing_);
        // No buffer hint, as in server/services.cc (a hinted ack can stall the stream).
      }
      if (!reading_ && !reads_done_ && !broken_ && !failed_ && in_flight_ < window_) reading_ = read = true;
      // Not while a read is outstanding, as in server/services.cc: it could still hand a report to the queue.
      if ((reads_done_ || broken_ || failed_) && in_flight_ == 0 && !writing_ && !reading_) {
        finished_ = finish = true;
        if (failed_) status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
      }
    }
    if (read) StartRead(incoming_.get());
    if (write) StartWrite(&outgoing_, write_options);
    if (finish) Finish(status);  // last touch of `this`
  }

  server::IngestQueue* queue_;
  const size_t window_;
  std::unique_ptr<v1::RunReport> incoming_;  // read chain; replaced under mu_ before the next read
  uint64_t next_sequence_ = 0;
  v1::RunAck outgoing_;
  size_t outgoing_reports_ = 0;  // reports outgoing_ stands for
  absl::Mutex mu_;
  server::AckQueue acks_ ABSL_GUARDED_BY(mu_);  // ranged when the client asked
  std::vector<std::unique_ptr<v1::RunReport>> spare_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class NullSelector final : public v1::AcceleratorSelector::CallbackService {
 public:
  NullSelector(int candidates, server::IngestQueue* queue, size_t window)
      : canned_(CannedResponse(candidates)), queue_(queue), window_(window) {
    SetMessageAllocatorFor_SelectAccelerator(&select_allocator_);  // as server/services.h
  }

  grpc::ServerUnaryReactor* SelectAccelerator(grpc::CallbackServerContext* ctx, const v1::SelectAcceleratorRequest*,
                                              v1::SelectAcceleratorResponse* response) override {
    *response = canned_;
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerBidiReactor<v1::RunReport, v1::RunAck>* ReportRun(grpc::CallbackServerContext* ctx) override {
    return new AckReactor(queue_, window_, server::WantsAckRanges(*ctx));
  }

 private:
  const v1::SelectAcceleratorResponse canned_;
  server::ArenaMessageAllocator<v1::SelectAcceleratorRequest, v1::SelectAcceleratorResponse> select_allocator_;
  server::IngestQueue* queue_;
  size_t window_;
};

int Main() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "null" && mode != "bare") {
    std::cerr << "accelsel-nullserver: --mode must be null or bare\n";
    return 2;
  }
  std::unique_ptr<storage::TelemetryStore> store;
  std::unique_ptr<server::IngestQueue> queue;
  if (mode == "bare") {
    storage::StoreOptions so;
    so.path = absl::GetFlag(FLAGS_data_dir);
    so.sync_writes = absl::GetFlag(FLAGS_sync_writes);
    auto opened = storage::TelemetryStore::Open(so);
    if (!opened.ok()) {
      std::cerr << "accelsel-nullserver: " << opened.status() << "\n";
      return 1;
    }
    store = *std::move(opened);
    queue = std::make_unique<server::IngestQueue>(store.get(), server::IngestOptions{}, nullptr);
  }
  NullSelector service(absl::GetFlag(FLAGS_candidates), queue.get(), absl::GetFlag(FLAGS_stream_window));

  // The ServerBuilder settings of server/server.cc.
  const server::ServerOptions defaults;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(defaults.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(defaults.max_message_bytes));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "accelsel-nullserver: cannot listen on " << listen << "\n";
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("", true);
  std::cout << "accelsel-nullserver listening on " << listen.substr(0, listen.rfind(':')) << ":" << port << " (mode "
            << mode << ")" << std::endl;

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (queue) queue->Stop();
  server->Wait();
  return 0;
}

}  // namespace
}  // namespace accelsel::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("accelsel-nullserver: the no-work floor for accelsel benchmarks (--mode=null|bare)");
  accelsel::util::SetFlagsVersion("accelsel-nullserver");
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_mutex_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return accelsel::bench::Main();
}
