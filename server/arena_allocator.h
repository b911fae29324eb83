// ArenaMessageAllocator: gives each call of a callback unary method its request and response on one protobuf
// Arena, freed in one go when the call ends. A SelectAccelerator answer is ~30 nested messages and ~150 strings;
// on the heap their allocation and destruction cost more server CPU than the ranking's own code
// (docs/BENCHMARKS.md). Register with Service::SetMessageAllocatorFor_<Method>.
#ifndef ACCELSEL_SERVER_ARENA_ALLOCATOR_H_
#define ACCELSEL_SERVER_ARENA_ALLOCATOR_H_

#include <cstddef>

#include "google/protobuf/arena.h"
#include "grpcpp/support/message_allocator.h"

namespace accelsel::server {

template <typename Request, typename Response>
class ArenaMessageAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  // `initial_block_bytes`: first arena block; big enough for a typical request + response avoids a second one.
  explicit ArenaMessageAllocator(size_t initial_block_bytes = 16 << 10) : initial_block_bytes_(initial_block_bytes) {}

  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(initial_block_bytes_); }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(size_t initial_block_bytes) : arena_(Options(initial_block_bytes)) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options(size_t initial_block_bytes) {
      google::protobuf::ArenaOptions o;
      o.start_block_size = initial_block_bytes;
      return o;
    }
    google::protobuf::Arena arena_;
  };

  const size_t initial_block_bytes_;
};

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_ARENA_ALLOCATOR_H_
