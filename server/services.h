// gRPC callback services: adapt each RPC to ServiceCore, with one shared wrapper for access control, timing and
// metrics.
//
// Every method is registered raw (gRPC hands over the request bytes, we parse them): gRPC's own parse failure is
// invisible to a handler — a unary call ends UNIMPLEMENTED with an empty message, and a stream's read looks like
// the client's half-close, so a ReportRun stream ended OK with reports silently unread. Parsing here turns it into
// INVALID_ARGUMENT saying the bytes did not parse (docs/API.md, "Status codes").
//
// Thread safety: gRPC calls every method of both services from its own threads, many at once; the service objects
// hold nothing but the two borrowed pointers, so they need no lock. Each ReportRun stream is a reactor of its own
// (services.cc) whose state is guarded by its own mutex and annotated. The blocking admin RPCs (Retrain, PinModel,
// RollbackModel, GetLiveQuality, Backup) run off the gRPC threads, each holding a ServiceCore worker slot until its
// last touch of the core; the other RPCs run inline on the gRPC thread. Ownership: the server owns the services, the
// core and the access control; the services borrow `core` and `access`, which outlive them; each ReportRun reactor
// deletes itself in its OnDone.
#ifndef ACCELSEL_SERVER_SERVICES_H_
#define ACCELSEL_SERVER_SERVICES_H_

#include "accelsel/v1/accelsel.grpc.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/access.h"
#include "server/service_core.h"

namespace accelsel::server {

using RawSelectorBase = v1::AcceleratorSelector::WithRawCallbackMethod_SelectAccelerator<
    v1::AcceleratorSelector::WithRawCallbackMethod_ReportRun<
        v1::AcceleratorSelector::WithRawCallbackMethod_ListStrategies<
            v1::AcceleratorSelector::WithRawCallbackMethod_RegisterStrategy<
                v1::AcceleratorSelector::WithRawCallbackMethod_GetModelInfo<
                    v1::AcceleratorSelector::WithRawCallbackMethod_RetireStrategy<
                        v1::AcceleratorSelector::WithRawCallbackMethod_UnretireStrategy<
                            v1::AcceleratorSelector::Service>>>>>>>;
using RawModelAdminBase = v1::ModelAdmin::WithRawCallbackMethod_Retrain<
    v1::ModelAdmin::WithRawCallbackMethod_PinModel<v1::ModelAdmin::WithRawCallbackMethod_RollbackModel<
        v1::ModelAdmin::WithRawCallbackMethod_QuarantineNode<v1::ModelAdmin::WithRawCallbackMethod_GetLiveQuality<
            v1::ModelAdmin::WithRawCallbackMethod_Backup<v1::ModelAdmin::Service>>>>>>;

class SelectorService final : public RawSelectorBase {
 public:
  SelectorService(ServiceCore* core, AccessControl* access) : core_(core), access_(access) {}

  grpc::ServerUnaryReactor* SelectAccelerator(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ReportRun(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* ListStrategies(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RegisterStrategy(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RetireStrategy(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* UnretireStrategy(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) override;

 private:
  ServiceCore* core_;
  AccessControl* access_;
};

class ModelAdminService final : public RawModelAdminBase {
 public:
  ModelAdminService(ServiceCore* core, AccessControl* access) : core_(core), access_(access) {}

  grpc::ServerUnaryReactor* Retrain(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* PinModel(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* QuarantineNode(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RollbackModel(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetLiveQuality(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Backup(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;

 private:
  ServiceCore* core_;
  AccessControl* access_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_SERVICES_H_
