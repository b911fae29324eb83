// Test helpers: a real accelsel server on 127.0.0.1:0 over a fresh RocksDB folder, and a channel to it.
#ifndef ACCELSEL_TESTS_SERVER_TEST_SERVER_H_
#define ACCELSEL_TESTS_SERVER_TEST_SERVER_H_

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/server.h"

namespace accelsel::testing {

// A fresh folder under ACCELSEL_TEST_TMPDIR (or /tmp), unique per process and call.
inline std::string FreshDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("ACCELSEL_TEST_TMPDIR");
  std::filesystem::path p =
      std::filesystem::path(base ? base : "/tmp") / absl::StrCat(tag, "-", getpid(), "-", counter++);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline server::ServerOptions TestOptions(const std::string& data_dir) {
  server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";  // one Exposer per process at most (its destructor is slow); metrics tests opt in
  o.data_dir = data_dir;
  o.trainer_enabled = false;
  o.sync_writes = false;
  o.shutdown_grace = absl::Seconds(2);
  // Train at normal priority: on a loaded test machine (parallel ctest, sanitizer builds) a nice-19 training is
  // starved for minutes. The priority itself matters for latency, which the benchmarks measure, not these tests.
  o.trainer_nice = 0;
  return o;
}

// The tokens of WriteTokenFile: node "node-a" and operator "ops-1".
inline constexpr char kNodeToken[] = "node-a-token-0123456789";
inline constexpr char kOperatorToken[] = "operator-token-0123456789";

// A token file in `dir` with kNodeToken and kOperatorToken, for ServerOptions::access.auth_tokens_file.
inline std::string WriteTokenFile(const std::string& dir) {
  const std::string path = dir + "/tokens";
  std::ofstream(path) << kNodeToken << " node node-a\n" << kOperatorToken << " operator ops-1\n";
  return path;
}

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::AcceleratorSelector::Stub> selector;
  std::unique_ptr<v1::ModelAdmin::Stub> admin;
};

inline Connection Connect(int port) {
  Connection c;
  c.channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  c.selector = v1::AcceleratorSelector::NewStub(c.channel);
  c.admin = v1::ModelAdmin::NewStub(c.channel);
  return c;
}

inline void SetDeadline(grpc::ClientContext* ctx, int seconds = 30) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// Sends `reports` on one ReportRun stream over `stub`, half-closes, and returns the acks in arrival order; the
// stream must end OK. `ctx` carries what the caller set (a token, metadata); a 30 s deadline is added.
inline std::vector<v1::RunAck> ReportAll(v1::AcceleratorSelector::Stub& stub, const std::vector<v1::RunReport>& reports,
                                         grpc::ClientContext* ctx) {
  SetDeadline(ctx);
  auto stream = stub.ReportRun(ctx);
  for (const auto& r : reports) EXPECT_TRUE(stream->Write(r));
  stream->WritesDone();
  std::vector<v1::RunAck> acks;
  v1::RunAck ack;
  while (stream->Read(&ack)) acks.push_back(ack);
  const grpc::Status st = stream->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  return acks;
}

// `s` as one slice; "" too is a valid (empty) message.
inline grpc::ByteBuffer Bytes(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

// A unary call of any method path with raw request bytes, through grpc::GenericStub: the HTTP/2 and gRPC framing
// are real, the payload is whatever the test says. A non-empty `token` goes out as "authorization: Bearer TOKEN".
inline grpc::Status RawUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                             const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                             const std::string& token = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

// A context for a 7B model on one H100 at the given batch size.
inline v1::TaskContext MakeContext(uint32_t batch, const std::string& model = "test/model-7b",
                                   const std::string& accel = "Test H100") {
  v1::TaskContext c;
  c.mutable_model()->set_name(model);
  c.mutable_model()->set_family("llama");
  c.mutable_model()->set_parameters_b(7);
  c.mutable_model()->set_layers(32);
  c.mutable_model()->set_hidden_size(4096);
  c.mutable_model()->set_attention_heads(32);
  c.mutable_model()->set_kv_heads(8);
  c.mutable_hardware()->set_accelerator(accel);
  c.mutable_hardware()->set_count(1);
  c.mutable_hardware()->set_memory_gb(80);
  c.mutable_hardware()->set_memory_bandwidth_gbps(3350);
  c.mutable_hardware()->set_peak_tflops(989);
  c.mutable_workload()->set_prompt_tokens(512);
  c.mutable_workload()->set_output_tokens(512);
  c.mutable_workload()->set_batch_size(batch);
  return c;
}

inline v1::Strategy MakeStrategy(const std::string& id) {
  v1::Strategy s;
  s.set_id(id);
  auto* c = s.add_components();
  c->set_method("engine");
  c->set_value(id);
  return s;
}

inline v1::RunReport MakeReport(const std::string& run_id, const std::string& strategy, uint32_t batch, double e2e_ms,
                                const std::string& node = "node-1") {
  v1::RunReport r;
  r.set_run_id(run_id);
  r.set_node_id(node);
  *r.mutable_context() = MakeContext(batch);
  r.set_strategy_id(strategy);
  r.set_status(v1::RUN_STATUS_OK);
  r.mutable_metrics()->set_e2e_latency_ms(e2e_ms);
  r.mutable_metrics()->set_throughput_tokens_per_s(batch * 512 / (e2e_ms / 1000.0));
  return r;
}

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_SERVER_TEST_SERVER_H_
