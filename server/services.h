// gRPC callback services: adapt each RPC to ServiceCore, with one shared wrapper for access control, timing and metrics.
#ifndef ACCELSEL_SERVER_SERVICES_H_
#define ACCELSEL_SERVER_SERVICES_H_

#include "accelsel/v1/accelsel.grpc.pb.h"
#include "server/access.h"
#include "server/arena_allocator.h"
#include "server/service_core.h"

namespace accelsel::server {

class SelectorService final : public v1::AcceleratorSelector::CallbackService {
 public:
  SelectorService(ServiceCore* core, AccessControl* access) : core_(core), access_(access) {
#if !defined(__SANITIZE_THREAD__)
    // Not under TSan: Debian's uninstrumented libprotobuf crashes there inside ThreadSafeArena (SEGV in
    // AllocateAlignedWithCleanup, with or without tests/tsan's absl annotations), while the same code is clean
    // under ASan + UBSan and in the normal build. TSan builds serve SelectAccelerator from heap messages.
    SetMessageAllocatorFor_SelectAccelerator(&select_allocator_);
#endif
  }

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
  AccessControl* access_;
  ArenaMessageAllocator<v1::SelectAcceleratorRequest, v1::SelectAcceleratorResponse> select_allocator_;
};

class ModelAdminService final : public v1::ModelAdmin::CallbackService {
 public:
  ModelAdminService(ServiceCore* core, AccessControl* access) : core_(core), access_(access) {}

  grpc::ServerUnaryReactor* Retrain(grpc::CallbackServerContext* ctx, const v1::RetrainRequest* request,
                                    v1::RetrainResponse* response) override;
  grpc::ServerUnaryReactor* PinModel(grpc::CallbackServerContext* ctx, const v1::PinModelRequest* request,
                                     v1::PinModelResponse* response) override;
  grpc::ServerUnaryReactor* RollbackModel(grpc::CallbackServerContext* ctx, const v1::RollbackModelRequest* request,
                                          v1::RollbackModelResponse* response) override;

 private:
  ServiceCore* core_;
  AccessControl* access_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_SERVICES_H_
