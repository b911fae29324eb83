// gRPC callback services: adapt each RPC to ServiceCore, with one shared wrapper for timing and metrics.
#ifndef ACCELSEL_SERVER_SERVICES_H_
#define ACCELSEL_SERVER_SERVICES_H_

#include "accelsel/v1/accelsel.grpc.pb.h"
#include "server/service_core.h"

namespace accelsel::server {

class SelectorService final : public v1::AcceleratorSelector::CallbackService {
 public:
  explicit SelectorService(ServiceCore* core) : core_(core) {}

  grpc::ServerUnaryReactor* SelectAccelerator(grpc::CallbackServerContext* ctx,
                                              const v1::SelectAcceleratorRequest* request,
                                              v1::SelectAcceleratorResponse* response) override;
  grpc::ServerBidiReactor<v1::RunReport, v1::RunAck>* ReportRun(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* ListStrategies(grpc::CallbackServerContext* ctx, const v1::ListStrategiesRequest* request,
                                           v1::ListStrategiesResponse* response) override;
  grpc::ServerUnaryReactor* RegisterStrategy(grpc::CallbackServerContext* ctx,
                                             const v1::RegisterStrategyRequest* request,
                                             v1::RegisterStrategyResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx, const v1::GetModelInfoRequest* request,
                                         v1::GetModelInfoResponse* response) override;

 private:
  ServiceCore* core_;
};

class ModelAdminService final : public v1::ModelAdmin::CallbackService {
 public:
  explicit ModelAdminService(ServiceCore* core) : core_(core) {}

  grpc::ServerUnaryReactor* Retrain(grpc::CallbackServerContext* ctx, const v1::RetrainRequest* request,
                                    v1::RetrainResponse* response) override;
  grpc::ServerUnaryReactor* PinModel(grpc::CallbackServerContext* ctx, const v1::PinModelRequest* request,
                                     v1::PinModelResponse* response) override;
  grpc::ServerUnaryReactor* RollbackModel(grpc::CallbackServerContext* ctx, const v1::RollbackModelRequest* request,
                                          v1::RollbackModelResponse* response) override;

 private:
  ServiceCore* core_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_SERVICES_H_
