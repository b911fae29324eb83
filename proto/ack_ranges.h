// The ReportRun ranged-ack contract (accelsel.proto, RunAck.count), shared by the server, the client library and
// the benchmarks: the stream metadata that asks for ranges, and how many reports one ack stands for.
#ifndef ACCELSEL_PROTO_ACK_RANGES_H_
#define ACCELSEL_PROTO_ACK_RANGES_H_

#include <cstddef>

#include "accelsel/v1/accelsel.pb.h"

namespace accelsel {

// Client metadata key; the value "1" asks the server for ranged acks on that ReportRun stream.
inline constexpr char kAckRangesMetadata[] = "accelsel-ack-ranges";

// Reports one ack stands for: `count`, where 0 (a plain ack, or a server that does not range) means 1.
inline size_t AcksCovered(const v1::RunAck& ack) { return ack.count() == 0 ? 1 : ack.count(); }

}  // namespace accelsel

#endif  // ACCELSEL_PROTO_ACK_RANGES_H_
