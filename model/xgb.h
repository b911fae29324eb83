// Thin RAII layer over XGBoost's C API: train a booster from a dense float matrix, save/load it as bytes and
// predict a dense block in one call. Everything XGBoost-specific in model/ goes through here.
#ifndef ACCELSEL_MODEL_XGB_H_
#define ACCELSEL_MODEL_XGB_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace accelsel::model {

struct XgbParams {
  std::string objective = "reg:squarederror";  // or "rank:pairwise", "binary:logistic"
  int num_rounds = 100;
  int max_depth = 6;
  double eta = 0.15;
  double subsample = 0.8;
  double colsample_bytree = 0.8;
  // Split search over features × bins dominates training time; sampling features per node halves it and
  // regularises like a random forest does.
  double colsample_bynode = 0.6;
  double min_child_weight = 2.0;
  double lambda = 1.0;
  int max_bin = 32;  // histogram bins per feature (XGBoost's default 256 costs 8× the split search)
  // One thread: the machine (and the server) share cores, and OpenMP barriers spin badly when oversubscribed.
  int nthread = 1;
  uint64_t seed = 1;
  // When set and true, training stops at the next boosting round with CANCELLED (a server shutting down does not
  // wait for a long retrain). Not owned.
  const std::atomic<bool>* cancel = nullptr;
};

// The trees of a booster in flat arrays, evaluated natively: XGBoost's C API spends ~150 µs of fixed overhead
// per prediction call, far more than walking 100 small trees for 32 rows. Read-only, so thread-safe.
// Layout: one 12-byte node per tree node, renumbered breadth-first so that a node's right child is its left
// child + 1 (one load per level instead of one per array). A leaf is its own left child and never goes right,
// so every row walks exactly its tree's depth without a branch on "is this a leaf", and a block of rows walks a
// tree in lock-step (independent chains the CPU overlaps).
struct CompiledForest {
  static constexpr uint32_t kDefaultLeft = 0x80000000u;  // in Node::feature: missing values go left
  struct Node {
    int32_t left;      // left child; the right child is left + 1; a leaf points to itself
    uint32_t feature;  // split column | kDefaultLeft
    float threshold;   // go left when x < threshold (a leaf has NaN and kDefaultLeft: always "left")
  };
  std::vector<Node> nodes;
  std::vector<float> leaf_value;  // per node, 0 for inner nodes
  std::vector<int32_t> roots;
  std::vector<int32_t> depths;  // per tree: levels from the root to its deepest leaf
  uint32_t num_features = 1;    // columns a row must have (one more than the largest split column, at least 1)
  float base_margin = 0;
  bool logistic = false;  // apply the sigmoid (binary:logistic)
  void Predict(const float* x, size_t rows, size_t cols, std::vector<float>* out) const;
};
// Rewrites every split of an XGBoost JSON model on a column flagged in `zero_is_missing` (trained with its zeros
// as missing values) into the equivalent split `x < 0.5` on the plain 0/1 column; see TrainFromBlocks.
absl::StatusOr<std::string> RouteZerosAsMissing(std::string_view json_model, const std::vector<bool>& zero_is_missing);

// Builds the forest from XGBoost's JSON model; an error for anything it does not understand (multi-class,
// categorical splits, linear boosters), in which case the C API path is used.
absl::StatusOr<CompiledForest> CompileForest(std::string_view json_model);

// A trained booster. Immutable after construction. Prediction uses the compiled forest; the C API path (only
// when compilation failed) is serialised by an internal mutex because a BoosterHandle's prediction buffers are
// not safe to share between threads.
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
  // Writes rows [begin, end) of a training matrix into `out`, row-major, `cols` floats per row (NaN = missing).
  using RowBlockFn = std::function<void(size_t begin, size_t end, float* out)>;
  // Regression / classification from rows produced block by block: XGBoost quantises each block as it arrives
  // (a QuantileDMatrix), so the float matrix never exists whole. For 1M rows × 160 features the whole matrix
  // is 640 MB of floats plus ~1.3 GB for XGBoost's own sparse copy; the quantised index is ~160 MB.
  //
  // `zero_is_missing` (empty, or one flag per column) marks 0/1 indicator columns: their zeros are handed to
  // XGBoost as missing, so its histograms skip them (about 2/3 of the meta-model's values are such zeros; the
  // fit takes ~1.5× less time). Each split on such a column then separates "present" from "missing", which is
  // exactly "1" from "0"; the trees are rewritten to test `x < 0.5` instead, so the booster predicts on the
  // plain 0/1 input like any other.
  //
  // `group_sizes` (ranking objectives): consecutive rows of one query group, as in Train.
  static absl::StatusOr<std::unique_ptr<XgbBooster>> TrainFromBlocks(const RowBlockFn& fill, size_t rows, size_t cols,
                                                                     const std::vector<float>& labels,
                                                                     const std::vector<float>& weights,
                                                                     const XgbParams& params,
                                                                     const std::vector<bool>& zero_is_missing = {},
                                                                     const std::vector<unsigned>& group_sizes = {});
  static absl::StatusOr<std::unique_ptr<XgbBooster>> Load(std::string_view bytes, size_t cols);

  absl::StatusOr<std::string> Save() const;
  // One dense prediction for all rows; `out` gets `rows` values.
  absl::Status Predict(const float* x, size_t rows, std::vector<float>* out) const;
  // XGBoost's own prediction (for tests comparing it with the compiled forest).
  absl::Status PredictWithXgboost(const float* x, size_t rows, std::vector<float>* out) const;
  size_t cols() const { return cols_; }
  bool compiled() const { return forest_.has_value(); }

 private:
  XgbBooster(void* handle, size_t cols) : handle_(handle), cols_(cols) {}
  // Sets the parameters, boosts p.num_rounds rounds on `dmatrix` and compiles the forest.
  static absl::StatusOr<std::unique_ptr<XgbBooster>> Boost(void* dmatrix, size_t cols, const XgbParams& p,
                                                           const std::vector<bool>& zero_is_missing);
  void Compile();
  void* handle_;
  size_t cols_;
  std::optional<CompiledForest> forest_;
  mutable absl::Mutex mu_;
};

}  // namespace accelsel::model

#endif  // ACCELSEL_MODEL_XGB_H_
