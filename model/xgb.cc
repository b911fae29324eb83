// XGBoost C API wrapper; see xgb.h. Pitfalls handled here: "cache_id":0 in the predict config, buffers copied
// out before the next call, errors turned into absl::Status.
#include "model/xgb.h"

#include <xgboost/c_api.h>

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace accelsel::model {
namespace {

absl::Status XgbError(const char* what) {
  return absl::InternalError(absl::StrCat("xgboost ", what, ": ", XGBGetLastError()));
}

class DMatrix {
 public:
  DMatrix() = default;
  ~DMatrix() {
    if (h_ != nullptr) XGDMatrixFree(h_);
  }
  DMatrixHandle* out() { return &h_; }
  DMatrixHandle get() const { return h_; }

 private:
  DMatrixHandle h_ = nullptr;
};

}  // namespace

XgbBooster::~XgbBooster() {
  if (handle_ != nullptr) XGBoosterFree(handle_);
}

absl::StatusOr<std::unique_ptr<XgbBooster>> XgbBooster::Train(const std::vector<float>& x, size_t rows,
                                                               size_t cols, const std::vector<float>& labels,
                                                               const std::vector<float>& weights,
                                                               const std::vector<unsigned>& group_sizes,
                                                               const XgbParams& p) {
  if (rows == 0 || cols == 0 || x.size() != rows * cols || labels.size() != rows) {
    return absl::InvalidArgumentError(absl::StrFormat("xgboost train: bad shape rows=%d cols=%d", rows, cols));
  }
  DMatrix dm;
  if (XGDMatrixCreateFromMat(x.data(), rows, cols, std::nanf(""), dm.out()) != 0) return XgbError("dmatrix");
  if (XGDMatrixSetFloatInfo(dm.get(), "label", labels.data(), rows) != 0) return XgbError("label");
  if (!weights.empty() && XGDMatrixSetFloatInfo(dm.get(), "weight", weights.data(), rows) != 0) {
    return XgbError("weight");
  }
  if (!group_sizes.empty() &&
      XGDMatrixSetUIntInfo(dm.get(), "group", group_sizes.data(), group_sizes.size()) != 0) {
    return XgbError("group");
  }
  BoosterHandle h = nullptr;
  DMatrixHandle mats[1] = {dm.get()};
  if (XGBoosterCreate(mats, 1, &h) != 0) return XgbError("create");
  std::unique_ptr<XgbBooster> booster(new XgbBooster(h, cols));
  const std::vector<std::pair<std::string, std::string>> params = {
      {"objective", p.objective},
      {"tree_method", "hist"},
      {"max_depth", absl::StrCat(p.max_depth)},
      {"eta", absl::StrCat(p.eta)},
      {"subsample", absl::StrCat(p.subsample)},
      {"colsample_bytree", absl::StrCat(p.colsample_bytree)},
      {"min_child_weight", absl::StrCat(p.min_child_weight)},
      {"lambda", absl::StrCat(p.lambda)},
      {"nthread", absl::StrCat(p.nthread)},
      {"seed", absl::StrCat(p.seed % 2147483647)},
      {"verbosity", "0"},
  };
  for (const auto& [k, v] : params) {
    if (XGBoosterSetParam(h, k.c_str(), v.c_str()) != 0) return XgbError("param");
  }
  for (int i = 0; i < p.num_rounds; ++i) {
    if (XGBoosterUpdateOneIter(h, i, dm.get()) != 0) return XgbError("update");
  }
  // Prediction of a handful of rows is faster without OpenMP fan-out.
  if (XGBoosterSetParam(h, "nthread", "1") != 0) return XgbError("param");
  return booster;
}

absl::StatusOr<std::unique_ptr<XgbBooster>> XgbBooster::Load(std::string_view bytes, size_t cols) {
  BoosterHandle h = nullptr;
  if (XGBoosterCreate(nullptr, 0, &h) != 0) return XgbError("create");
  std::unique_ptr<XgbBooster> booster(new XgbBooster(h, cols));
  if (XGBoosterLoadModelFromBuffer(h, bytes.data(), bytes.size()) != 0) return XgbError("load");
  if (XGBoosterSetParam(h, "nthread", "1") != 0) return XgbError("param");
  return booster;
}

absl::StatusOr<std::string> XgbBooster::Save() const {
  absl::MutexLock lock(&mu_);
  bst_ulong len = 0;
  const char* data = nullptr;
  if (XGBoosterSaveModelToBuffer(handle_, R"({"format":"ubj"})", &len, &data) != 0) return XgbError("save");
  return std::string(data, len);  // copied before any other call reuses the buffer
}

absl::Status XgbBooster::Predict(const float* x, size_t rows, std::vector<float>* out) const {
  out->clear();
  if (rows == 0) return absl::OkStatus();
  const std::string array = absl::StrFormat(
      R"({"data":[%u,true],"shape":[%u,%u],"typestr":"<f4","version":3})",
      static_cast<uint64_t>(reinterpret_cast<uintptr_t>(x)), rows, cols_);
  static constexpr char kConfig[] =
      R"({"type":0,"training":false,"iteration_begin":0,"iteration_end":0,"strict_shape":false,)"
      R"("missing":NaN,"cache_id":0})";
  absl::MutexLock lock(&mu_);
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* result = nullptr;
  if (XGBoosterPredictFromDense(handle_, array.c_str(), kConfig, nullptr, &shape, &dim, &result) != 0) {
    return XgbError("predict");
  }
  out->assign(result, result + rows);
  return absl::OkStatus();
}

}  // namespace accelsel::model
