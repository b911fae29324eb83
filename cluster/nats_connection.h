// The NATS connection both cluster-mode links open (the run stream and the coordination of models): servers,
// reconnect policy, authentication and TLS from RunStreamOptions, errors that name the flag at fault. Internal to
// cluster/; only built with the NATS C client.
#ifndef ACCELSEL_CLUSTER_NATS_CONNECTION_H_
#define ACCELSEL_CLUSTER_NATS_CONNECTION_H_

#include <nats/nats.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster/run_stream.h"

namespace accelsel::cluster {

inline int64_t Millis(absl::Duration d) { return std::max<int64_t>(1, absl::ToInt64Milliseconds(d)); }

// The library's own text for the last error of this thread, which names the server or the JetStream reason.
std::string NatsError(natsStatus s);

// Connects (within options.connect_timeout) as client `name`, reconnecting forever afterwards; connection events
// are logged. The caller owns the connection and ends it with CloseNats.
absl::StatusOr<natsConnection*> ConnectNats(const RunStreamOptions& options, const char* name);

// Closes and destroys a connection from ConnectNats. The library joins its reader, flusher and reconnect threads on
// close without a bound; a close that has not returned within `bound` is left to a thread of its own and logged
// (cluster_nats_close_stuck), so that neither a shutdown nor a failed start hangs on it.
void CloseNats(natsConnection* nc, const char* name, absl::Duration bound = absl::Seconds(10));

}  // namespace accelsel::cluster

#endif  // ACCELSEL_CLUSTER_NATS_CONNECTION_H_
