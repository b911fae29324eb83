// RunStream in a build without the NATS C client: cluster mode is refused at start-up.
#include "cluster/run_stream.h"

namespace accelsel::cluster {

bool RunStream::Available() { return false; }

absl::StatusOr<std::unique_ptr<RunStream>> RunStream::Open(const RunStreamOptions&) {
  return absl::FailedPreconditionError(
      "--nats: this accelsel-server was built without the NATS C client (install libnats-dev and rebuild)");
}

}  // namespace accelsel::cluster
