// Thin RAII layer over XGBoost's C API: train a booster from a dense float matrix, save/load it as bytes and
// predict a dense block in one call. Everything XGBoost-specific in model/ goes through here.
#ifndef ACCELSEL_MODEL_XGB_H_
#define ACCELSEL_MODEL_XGB_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace accelsel::model {

struct XgbParams {
  std::string objective = "reg:squarederror";  // or "rank:pairwise", "binary:logistic"
  int num_rounds = 200;
  int max_depth = 6;
  double eta = 0.1;
  double subsample = 0.8;
  double colsample_bytree = 0.8;
  double min_child_weight = 1.0;
  double lambda = 1.0;
  // One thread: the machine (and the server) share cores, and OpenMP barriers spin badly when oversubscribed.
  int nthread = 1;
  uint64_t seed = 1;
};

// A trained booster. Immutable after construction; Predict is serialised by an internal mutex because a
// BoosterHandle's prediction buffers are not safe to share between threads.
class XgbBooster {
 public:
  ~XgbBooster();
  XgbBooster(const XgbBooster&) = delete;
  XgbBooster& operator=(const XgbBooster&) = delete;

  // `x` is rows×cols row-major, NaN = missing. `weights` may be empty. `group_sizes` (ranking only) are the sizes
  // of consecutive row groups.
  static absl::StatusOr<std::unique_ptr<XgbBooster>> Train(const std::vector<float>& x, size_t rows, size_t cols,
                                                           const std::vector<float>& labels,
                                                           const std::vector<float>& weights,
                                                           const std::vector<unsigned>& group_sizes,
                                                           const XgbParams& params);
  static absl::StatusOr<std::unique_ptr<XgbBooster>> Load(std::string_view bytes, size_t cols);

  absl::StatusOr<std::string> Save() const;
  // One dense prediction for all rows; `out` gets `rows` values.
  absl::Status Predict(const float* x, size_t rows, std::vector<float>* out) const;
  size_t cols() const { return cols_; }

 private:
  XgbBooster(void* handle, size_t cols) : handle_(handle), cols_(cols) {}
  void* handle_;
  size_t cols_;
  mutable absl::Mutex mu_;
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_XGB_H_
