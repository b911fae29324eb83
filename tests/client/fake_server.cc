// FakeSelector: deterministic server behaviour for client tests (see fake_server.h).
#include "tests/client/fake_server.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace accelsel::testing {

grpc::Status FakeSelector::TakeFailure(Failures* f, grpc::ServerContext* ctx) {
  if (f->n <= 0) return grpc::Status::OK;
  --f->n;
  for (const auto& [key, value] : f->trailers) ctx->AddTrailingMetadata(key, value);
  return grpc::Status(f->code, "fake failure");
}

grpc::Status FakeSelector::BeginUnary(grpc::ServerContext* ctx) {
  absl::Duration delay;
  {
    absl::MutexLock l(&mu_);
    ++unary_calls_;
    auto it = ctx->client_metadata().find("authorization");
    last_authorization_ = it == ctx->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
    if (grpc::Status failed = TakeFailure(&unary_failures_, ctx); !failed.ok()) return failed;
    delay = unary_delay_;
  }
  // Sleep in slices so a cancelled call (deadline passed) frees the thread early.
  const absl::Time until = absl::Now() + delay;
  while (absl::Now() < until && !ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  return grpc::Status::OK;
}

grpc::Status FakeSelector::SelectAccelerator(grpc::ServerContext* ctx, const v1::SelectAcceleratorRequest* req,
                                             v1::SelectAcceleratorResponse* resp) {
  if (auto s = BeginUnary(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  last_select_ = *req;
  std::vector<std::string> ids(req->candidate_ids().begin(), req->candidate_ids().end());
  if (ids.empty()) {
    for (const auto& [id, s] : catalogue_) ids.push_back(id);
  }
  // Rank in the given order; the last candidate has no evidence, to exercise the "unknown" rendering.
  for (size_t i = 0; i < ids.size(); ++i) {
    if (req->top_k() > 0 && i >= req->top_k()) break;
    auto* rec = resp->add_recommendations();
    rec->mutable_strategy()->set_id(ids[i]);
    rec->set_rank(static_cast<uint32_t>(i + 1));
    const bool last = i + 1 == ids.size() && ids.size() > 1;
    rec->set_evidence_layer(last ? v1::EVIDENCE_LAYER_UNKNOWN : v1::EVIDENCE_LAYER_OBSERVED);
    if (!last) {
      rec->set_expected_value(1000.0 * static_cast<double>(i + 1) + 0.5);
      rec->mutable_interval()->set_low(900.0 * static_cast<double>(i + 1));
      rec->mutable_interval()->set_high(1100.0 * static_cast<double>(i + 1));
      rec->mutable_interval()->set_nominal_coverage(0.8);
      rec->set_evidence_count(10 - i);
    }
    rec->set_meets_constraints(i == 0);
    if (i != 0) rec->add_violated("max_latency_ms");
  }
  resp->set_decision_id("dec-test-1");
  resp->set_objective(req->objective() == v1::OBJECTIVE_UNSPECIFIED ? v1::OBJECTIVE_E2E_LATENCY : req->objective());
  return grpc::Status::OK;
}

v1::RunAck FakeSelector::Judge(const v1::RunReport& report) {
  v1::RunAck ack;
  ack.set_run_id(report.run_id());
  if (report.run_id().empty()) {
    ack.set_result(v1::RunAck::RESULT_REJECTED);
    ack.set_reason("run_id: must not be empty");
  } else if (report.metrics().has_e2e_latency_ms() && report.metrics().e2e_latency_ms() < 0) {
    ack.set_result(v1::RunAck::RESULT_REJECTED);
    ack.set_reason("metrics.e2e_latency_ms: must be finite and >= 0");
  } else if (stored_.insert(report.run_id()).second) {
    ack.set_result(v1::RunAck::RESULT_DURABLE);
  } else {
    ack.set_result(v1::RunAck::RESULT_DUPLICATE);
  }
  return ack;
}

grpc::Status FakeSelector::ReportRun(grpc::ServerContext* ctx,
                                     grpc::ServerReaderWriter<v1::RunAck, v1::RunReport>* stream) {
  int break_after = 0;
  bool store_before_break = false;
  {
    absl::MutexLock l(&mu_);
    ++streams_;
    auto it = ctx->client_metadata().find("authorization");
    last_authorization_ = it == ctx->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
    break_after = break_after_acks_;
    store_before_break = store_before_break_;
    if (grpc::Status failed = TakeFailure(&stream_failures_, ctx); !failed.ok()) return failed;
  }
  v1::RunReport report;
  uint64_t sequence = 0;
  int acks = 0;
  while (stream->Read(&report)) {
    v1::RunAck ack;
    {
      absl::MutexLock l(&mu_);
      ++reports_read_;
      if (break_after > 0 && acks >= break_after) {
        // This report was read after the last ack this stream gives: store it (maybe) and lose its ack.
        if (store_before_break) Judge(report);
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake stream break");
      }
      // Hold acks back until released or the call is cancelled.
      while (hold_acks_ && !ctx->IsCancelled())
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](bool* hold) { return !*hold; }, &hold_acks_),
                             absl::Milliseconds(10));
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      ack = Judge(report);
    }
    ack.set_sequence(sequence++);
    if (!stream->Write(ack)) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
    ++acks;
  }
  return grpc::Status::OK;
}

grpc::Status FakeSelector::ListStrategies(grpc::ServerContext* ctx, const v1::ListStrategiesRequest*,
                                          v1::ListStrategiesResponse* resp) {
  if (auto s = BeginUnary(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  for (const auto& [id, s] : catalogue_) *resp->add_strategies() = s;
  return grpc::Status::OK;
}

grpc::Status FakeSelector::RegisterStrategy(grpc::ServerContext* ctx, const v1::RegisterStrategyRequest* req,
                                            v1::RegisterStrategyResponse* resp) {
  if (auto s = BeginUnary(ctx); !s.ok()) return s;
  if (req->strategy().id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "strategy.id: empty");
  absl::MutexLock l(&mu_);
  const bool created = catalogue_.emplace(req->strategy().id(), req->strategy()).second;
  *resp->mutable_strategy() = catalogue_[req->strategy().id()];
  resp->set_created(created);
  return grpc::Status::OK;
}

grpc::Status FakeSelector::GetModelInfo(grpc::ServerContext* ctx, const v1::GetModelInfoRequest*,
                                        v1::GetModelInfoResponse* resp) {
  if (auto s = BeginUnary(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  resp->set_serving_version(serving_version_);
  resp->set_runs_stored(stored_.size());
  resp->set_strategies(catalogue_.size());
  if (off_policy_.has_value()) {
    v1::ModelVersionInfo* v = resp->add_history();
    v->set_version(serving_version_ + 1);
    *v->mutable_evaluation()->mutable_off_policy() = *off_policy_;
  }
  return grpc::Status::OK;
}

grpc::Status FakeSelector::Retrain(grpc::ServerContext* ctx, const v1::RetrainRequest*, v1::RetrainResponse* resp) {
  if (auto s = BeginUnary(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  resp->mutable_candidate()->set_version(serving_version_ + 1);
  resp->mutable_candidate()->set_training_rows(stored_.size());
  if (off_policy_.has_value()) *resp->mutable_candidate()->mutable_evaluation()->mutable_off_policy() = *off_policy_;
  return grpc::Status::OK;
}

grpc::Status FakeSelector::PinModel(grpc::ServerContext* ctx, const v1::PinModelRequest* req,
                                    v1::PinModelResponse* resp) {
  if (auto s = BeginUnary(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  serving_version_ = req->version();
  resp->set_serving_version(serving_version_);
  return grpc::Status::OK;
}

grpc::Status FakeSelector::RollbackModel(grpc::ServerContext* ctx, const v1::RollbackModelRequest*,
                                         v1::RollbackModelResponse* resp) {
  if (auto s = BeginUnary(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  if (serving_version_ == 0) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no earlier version");
  resp->set_serving_version(--serving_version_);
  return grpc::Status::OK;
}

FakeServer::FakeServer(const std::string& tls_cert_pem, const std::string& tls_key_pem) {
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!tls_cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({tls_key_pem, tls_cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", creds, &port_);
  builder.RegisterService(static_cast<v1::AcceleratorSelector::Service*>(&service_));
  builder.RegisterService(static_cast<v1::ModelAdmin::Service*>(&service_));
  server_ = builder.BuildAndStart();
}

FakeServer::~FakeServer() { Shutdown(); }

void FakeServer::Shutdown() {
  if (server_ != nullptr) {
    // A deadline so streams the client keeps open are cancelled rather than waited for.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_->Wait();
    server_.reset();
  }
}

}  // namespace accelsel::testing
