// The stable keys of a task context, the same in every process, build and release (built on util/hash.h, never
// absl::Hash or std::hash): ContextKey identifies a task for the observed statistics, the training weights and the
// decision log; HoldoutContextKey decides which contexts the trainer holds out.
#ifndef ACCELSEL_MODEL_CONTEXT_KEY_H_
#define ACCELSEL_MODEL_CONTEXT_KEY_H_

#include <cstdint>

#include "model/types.h"

namespace accelsel::model {

// Identity of a task context: model, weight dtype, accelerator, count, the workload shape (prompt, output, batch),
// the caller's extra features and embedding. Names are compared case-insensitively.
uint64_t ContextKey(const TaskContext& c);
// Coarser identity (model, dtype, accelerator, count): the group of similar tasks for the prior layer.
uint64_t ContextGroupKey(const TaskContext& c);
// The key of the held-out split (ModelManager::InHoldout): model, dtype, accelerator (lower-cased), count and the
// workload shape, then the extra features and embedding where a context has them. Kept apart from ContextKey because
// its value decides which stored contexts every model was evaluated on: changing it would let a candidate be scored
// on contexts the serving model was trained on. (Contexts with extra features or an embedding joined the key in
// blob format 4's release; before, they were split by the other fields alone, so a table whose tasks differ only in
// extra columns held none out.)
uint64_t HoldoutContextKey(const TaskContext& c);

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_CONTEXT_KEY_H_
