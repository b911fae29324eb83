// Conversion between accelsel.v1 messages and the plain records of model/types.h.
// The only place where the wire format meets the meta-learning core.
#ifndef ACCELSEL_PROTO_CONVERT_H_
#define ACCELSEL_PROTO_CONVERT_H_

#include <string>

#include "accelsel/v1/accelsel.pb.h"
#include "model/selector.h"
#include "model/types.h"

namespace accelsel {

model::TaskContext FromProto(const v1::TaskContext& in);
model::Strategy FromProto(const v1::Strategy& in);
model::RunRecord FromProto(const v1::RunReport& in);
// The parts of FromProto(RunReport) for a caller that converts no more of a run than it reads.
model::RunStatus FromProto(v1::RunStatus in);
model::RunMetrics FromProto(const v1::RunMetrics& in);
model::Objective FromProto(v1::Objective in);
// The strategy a run report names: strategy_id, or the inline definition's id when strategy_id is empty.
const std::string& StrategyIdOf(const v1::RunReport& in);

void ToProto(const model::TaskContext& in, v1::TaskContext* out);
// Components come out with lossy = false: a model::Strategy keeps only whether any of them is lossy, so a definition
// with lossy components is built as a v1::Strategy.
void ToProto(const model::Strategy& in, v1::Strategy* out);
void ToProto(const model::RunRecord& in, v1::RunReport* out);
v1::Objective ToProto(model::Objective in);
v1::EvidenceLayer ToProto(model::EvidenceLayer in);
// Every field of a ranked recommendation except `strategy`, which the caller copies from its catalogue (the
// definition as registered, not the parsed record). `nominal_coverage` is the selector's interval coverage.
void ToProto(const model::Recommendation& in, double nominal_coverage, v1::Recommendation* out);

}  // namespace accelsel

#endif  // ACCELSEL_PROTO_CONVERT_H_
