// Predictor: what a trained meta-model offers the selector. Implementations are immutable once built, so one
// instance serves many concurrent calls; a new version is a new object swapped in by the server.
#ifndef ACCELSEL_MODEL_PREDICTOR_H_
#define ACCELSEL_MODEL_PREDICTOR_H_

#include <cstdint>
#include <vector>

#include "model/types.h"

namespace accelsel::model {

// Prediction for one (context, strategy), in the objective's unit.
struct Prediction {
  double expected = kMissing;      // point estimate (median)
  double low = kMissing;           // lower bound of the nominal interval
  double high = kMissing;          // upper bound
  double latency_ms = kMissing;    // e2e latency estimate, whatever the objective
  double failure_probability = 0;  // P(OOM/TIMEOUT/CRASH)
  double peak_memory_gb = kMissing;
  // Order among the candidates of one Predict call (same context and objective), lower = better, from a ranking
  // head trained on orderings rather than values; NaN when the predictor has none (then `expected` orders).
  // Comparable only within one call: it is not in the objective's unit.
  double rank_score = kMissing;
  // How far `expected` may be off against the other strategies of the same call, as a log standard deviation (an
  // error every candidate of the context shares is left out: it does not change which is best). NaN = not known.
  double relative_log_sd = kMissing;
};

class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual uint64_t version() const = 0;
  // Fills `out` with one prediction per strategy, in order.
  virtual void Predict(const TaskContext& context, const std::vector<const Strategy*>& strategies, Objective objective,
                       std::vector<Prediction>* out) const = 0;
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_PREDICTOR_H_
