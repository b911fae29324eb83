// An in-process stand-in for the accelsel server, for client tests: a real gRPC server on 127.0.0.1 port 0
// whose ReportRun can break streams after N acks or hold acks back, and whose unary calls can fail on demand.
#ifndef ACCELSEL_TESTS_CLIENT_FAKE_SERVER_H_
#define ACCELSEL_TESTS_CLIENT_FAKE_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace accelsel::testing {

class FakeSelector final : public v1::AcceleratorSelector::Service, public v1::ModelAdmin::Service {
 public:
  // ReportRun behaviour.
  void set_break_after_acks(int n) {  // 0 = never break
    absl::MutexLock l(&mu_);
    break_after_acks_ = n;
  }
  // When breaking, first read one more report and store it without acking it (a lost ack).
  void set_store_before_break(bool on) {
    absl::MutexLock l(&mu_);
    store_before_break_ = on;
  }
  void set_hold_acks(bool on) {
    absl::MutexLock l(&mu_);
    hold_acks_ = on;
  }
  // Unary behaviour: the next `n` unary calls fail with `code`, sending `trailers` as trailing metadata (e.g.
  // grpc-retry-pushback-ms).
  void FailNextCalls(int n, grpc::StatusCode code, std::map<std::string, std::string> trailers = {}) {
    absl::MutexLock l(&mu_);
    unary_failures_ = Failures{n, code, std::move(trailers)};
  }
  // ReportRun: the next `n` streams end at once with `code` and `trailers`, reading nothing.
  void FailNextStreams(int n, grpc::StatusCode code, std::map<std::string, std::string> trailers = {}) {
    absl::MutexLock l(&mu_);
    stream_failures_ = Failures{n, code, std::move(trailers)};
  }
  void set_unary_delay(absl::Duration d) {
    absl::MutexLock l(&mu_);
    unary_delay_ = d;
  }
  // Model admin: Retrain's candidate carries these off-policy figures, and GetModelInfo lists that candidate.
  void set_off_policy(const v1::OffPolicyEvaluation& off_policy) {
    absl::MutexLock l(&mu_);
    off_policy_ = off_policy;
  }

  std::set<std::string> stored() const {
    absl::MutexLock l(&mu_);
    return stored_;
  }
  int unary_calls() const {
    absl::MutexLock l(&mu_);
    return unary_calls_;
  }
  int streams() const {
    absl::MutexLock l(&mu_);
    return streams_;
  }
  int reports_read() const {
    absl::MutexLock l(&mu_);
    return reports_read_;
  }
  std::string last_authorization() const {
    absl::MutexLock l(&mu_);
    return last_authorization_;
  }
  v1::SelectAcceleratorRequest last_select() const {
    absl::MutexLock l(&mu_);
    return last_select_;
  }
  std::map<std::string, v1::Strategy> catalogue() const {
    absl::MutexLock l(&mu_);
    return catalogue_;
  }

  grpc::Status SelectAccelerator(grpc::ServerContext* ctx, const v1::SelectAcceleratorRequest* req,
                                 v1::SelectAcceleratorResponse* resp) override;
  grpc::Status ReportRun(grpc::ServerContext* ctx,
                         grpc::ServerReaderWriter<v1::RunAck, v1::RunReport>* stream) override;
  grpc::Status ListStrategies(grpc::ServerContext* ctx, const v1::ListStrategiesRequest*,
                              v1::ListStrategiesResponse* resp) override;
  grpc::Status RegisterStrategy(grpc::ServerContext* ctx, const v1::RegisterStrategyRequest* req,
                                v1::RegisterStrategyResponse* resp) override;
  grpc::Status GetModelInfo(grpc::ServerContext* ctx, const v1::GetModelInfoRequest*,
                            v1::GetModelInfoResponse* resp) override;
  grpc::Status Retrain(grpc::ServerContext* ctx, const v1::RetrainRequest*, v1::RetrainResponse* resp) override;
  grpc::Status PinModel(grpc::ServerContext* ctx, const v1::PinModelRequest* req, v1::PinModelResponse* resp) override;
  grpc::Status RollbackModel(grpc::ServerContext* ctx, const v1::RollbackModelRequest*,
                             v1::RollbackModelResponse* resp) override;

 private:
  struct Failures {
    int n = 0;
    grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
    std::map<std::string, std::string> trailers;
  };
  // Counts the call, records its metadata and applies FailNextCalls / set_unary_delay.
  grpc::Status BeginUnary(grpc::ServerContext* ctx);
  // Takes one of `f`'s failures, if any are left: sets its trailers on `ctx` and returns its status; else OK.
  static grpc::Status TakeFailure(Failures* f, grpc::ServerContext* ctx);
  // DURABLE / DUPLICATE / REJECTED for one report; stores it when valid.
  v1::RunAck Judge(const v1::RunReport& report) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int break_after_acks_ ABSL_GUARDED_BY(mu_) = 0;
  bool store_before_break_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_acks_ ABSL_GUARDED_BY(mu_) = false;
  Failures unary_failures_ ABSL_GUARDED_BY(mu_);
  Failures stream_failures_ ABSL_GUARDED_BY(mu_);
  absl::Duration unary_delay_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> stored_ ABSL_GUARDED_BY(mu_);
  int unary_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  int reports_read_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_authorization_ ABSL_GUARDED_BY(mu_);
  v1::SelectAcceleratorRequest last_select_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Strategy> catalogue_ ABSL_GUARDED_BY(mu_);
  uint64_t serving_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<v1::OffPolicyEvaluation> off_policy_ ABSL_GUARDED_BY(mu_);
};

// Owns a FakeSelector served on 127.0.0.1:<free port>.
class FakeServer {
 public:
  // tls_cert_pem / tls_key_pem empty = plaintext.
  explicit FakeServer(const std::string& tls_cert_pem = "", const std::string& tls_key_pem = "");
  ~FakeServer();
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  FakeSelector& service() { return service_; }
  void Shutdown();

 private:
  FakeSelector service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_CLIENT_FAKE_SERVER_H_
