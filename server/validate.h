// Request validation: every rule a request must satisfy before it reaches the store or the selector.
// Each failure is INVALID_ARGUMENT with a message naming the field and the rule, e.g.
// "context.workload.batch_size: must be >= 1 (got 0)", and the same as a google.rpc.BadRequest field violation
// (server/grpc_status.h, InvalidField).
#ifndef ACCELSEL_SERVER_VALIDATE_H_
#define ACCELSEL_SERVER_VALIDATE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::server {

struct ValidationLimits {
  size_t max_id_chars = 128;    // run_id, node_id, strategy ids, decision_id
  size_t max_name_chars = 256;  // model name, accelerator, engine, dataset, ...
  size_t max_candidates = 256;
  size_t max_top_k = 256;
  size_t max_embedding = 64;
  size_t max_extra = 32;
  size_t max_components = 32;
  // A strategy definition, serialized: every ListStrategies page and every SelectAccelerator answer carries whole
  // definitions, so their size bounds those messages (docs/API.md, "Validation rules").
  size_t max_strategy_bytes = 4 << 10;
  size_t max_select_bytes = 1 << 20;   // serialized SelectAcceleratorRequest
  size_t max_report_bytes = 64 << 10;  // serialized RunReport
};

// Ids: 1..max_id_chars of [A-Za-z0-9._:/+=-].
absl::Status ValidateId(absl::string_view field, absl::string_view value, const ValidationLimits& limits);
absl::Status ValidateContext(absl::string_view field, const v1::TaskContext& c, const ValidationLimits& limits);
absl::Status ValidateStrategy(absl::string_view field, const v1::Strategy& s, const ValidationLimits& limits);
// Structural checks of a report. Whether its strategy is known is the caller's business (needs the catalogue).
absl::Status ValidateRunReport(const v1::RunReport& r, const ValidationLimits& limits);
// Structural checks of a selection request (not whether candidate ids exist).
absl::Status ValidateSelectRequest(const v1::SelectAcceleratorRequest& r, const ValidationLimits& limits);

// Drops the fields this server does not know (sent by a newer or hostile client) from every message of the report
// or definition, so they are never stored. Walks the message types by hand, cheaply (validate_test checks the walk
// reaches every message type a RunReport can hold). Returns whether anything was dropped.
bool StripUnknownFields(v1::RunReport* report);
bool StripUnknownFields(v1::Strategy* strategy);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_VALIDATE_H_
