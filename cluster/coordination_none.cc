// Coordination in a build without the NATS C client: cluster mode is refused at start-up.
#include "cluster/coordination.h"

namespace accelsel::cluster {

bool Coordination::Available() { return false; }

absl::StatusOr<std::unique_ptr<Coordination>> Coordination::Open(const RunStreamOptions&, const CoordinationOptions&) {
  return absl::FailedPreconditionError(
      "--nats: this accelsel-server was built without the NATS C client (install libnats-dev and rebuild)");
}

}  // namespace accelsel::cluster
