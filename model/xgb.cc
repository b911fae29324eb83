// XGBoost C API wrapper; see xgb.h. Pitfalls handled here: "cache_id":0 in the predict config, buffers copied
// out before the next call, errors turned into absl::Status.
#include "model/xgb.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

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

absl::StatusOr<CompiledForest> CompileForest(std::string_view json_model) {
  nlohmann::json j = nlohmann::json::parse(json_model.begin(), json_model.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("xgboost model: not JSON");
  const nlohmann::json* learner = j.contains("learner") ? &j["learner"] : nullptr;
  if (learner == nullptr || !learner->contains("gradient_booster") || !learner->contains("objective") ||
      !learner->contains("learner_model_param")) {
    return absl::InvalidArgumentError("xgboost model: unexpected layout");
  }
  const auto& booster = (*learner)["gradient_booster"];
  const auto& param = (*learner)["learner_model_param"];
  if (booster.value("name", "") != "gbtree" || !booster.contains("model") || param.value("num_class", "0") != "0" ||
      param.value("num_target", "1") != "1") {
    return absl::InvalidArgumentError("xgboost model: only single-output gbtree is compiled");
  }
  const std::string objective = (*learner)["objective"].value("name", "");
  CompiledForest f;
  double base = 0;
  if (!absl::SimpleAtod(param.value("base_score", "0.5"), &base)) {
    return absl::InvalidArgumentError("xgboost model: bad base_score");
  }
  if (objective == "binary:logistic") {
    f.logistic = true;
    base = std::clamp(base, 1e-7, 1 - 1e-7);
    f.base_margin = static_cast<float>(-std::log(1.0 / base - 1.0));
  } else if (objective == "reg:squarederror" || objective == "rank:pairwise") {
    f.base_margin = static_cast<float>(base);
  } else {
    return absl::InvalidArgumentError("xgboost model: objective not compiled: " + objective);
  }
  uint32_t max_feature = 0;
  for (const auto& tree : booster["model"]["trees"]) {
    const auto& l = tree["left_children"];
    const auto& r = tree["right_children"];
    const auto& idx = tree["split_indices"];
    const auto& cond = tree["split_conditions"];
    const auto& dl = tree["default_left"];
    const size_t n = l.size();
    if (n == 0 || r.size() != n || idx.size() != n || cond.size() != n || dl.size() != n ||
        (tree.contains("categories") && !tree["categories"].empty())) {
      return absl::InvalidArgumentError("xgboost model: malformed tree");
    }
    // Breadth-first from XGBoost's root (node 0): each inner node's two children get consecutive new indices.
    const int32_t offset = static_cast<int32_t>(f.nodes.size());
    f.roots.push_back(offset);
    std::vector<std::pair<int64_t, int32_t>> queue = {{0, 0}};  // (XGBoost node, depth), in new-index order
    int32_t depth = 0;
    for (size_t q = 0; q < queue.size(); ++q) {
      if (queue.size() > n) return absl::InvalidArgumentError("xgboost model: tree is not a tree");
      const auto [old_id, level] = queue[q];
      const int64_t li = l[old_id].get<int64_t>(), ri = r[old_id].get<int64_t>();
      if (li >= static_cast<int64_t>(n) || ri >= static_cast<int64_t>(n) || (li < 0) != (ri < 0)) {
        return absl::InvalidArgumentError("xgboost model: bad child index");
      }
      const int32_t self = offset + static_cast<int32_t>(q);
      if (li < 0) {
        f.nodes.push_back({self, CompiledForest::kDefaultLeft, std::numeric_limits<float>::quiet_NaN()});
        f.leaf_value.push_back(cond[old_id].get<float>());
        depth = std::max(depth, level);
        continue;
      }
      const int64_t feat = idx[old_id].get<int64_t>();
      if (feat < 0 || feat >= static_cast<int64_t>(CompiledForest::kDefaultLeft)) {
        return absl::InvalidArgumentError("xgboost model: bad split index");
      }
      const bool default_left = dl[old_id].is_boolean() ? dl[old_id].get<bool>() : dl[old_id].get<int>() != 0;
      max_feature = std::max(max_feature, static_cast<uint32_t>(feat));
      f.nodes.push_back({offset + static_cast<int32_t>(queue.size()),
                         static_cast<uint32_t>(feat) | (default_left ? CompiledForest::kDefaultLeft : 0u),
                         cond[old_id].get<float>()});
      f.leaf_value.push_back(0.0f);
      queue.push_back({li, level + 1});
      queue.push_back({ri, level + 1});
    }
    f.depths.push_back(depth);
  }
  f.num_features = max_feature + 1;
  return f;
}

absl::StatusOr<std::string> RouteZerosAsMissing(std::string_view json_model, const std::vector<bool>& zero_is_missing) {
  nlohmann::json j = nlohmann::json::parse(json_model.begin(), json_model.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("learner") || !j["learner"].contains("gradient_booster") ||
      !j["learner"]["gradient_booster"].contains("model")) {
    return absl::InvalidArgumentError("xgboost model: unexpected layout");
  }
  for (auto& tree : j["learner"]["gradient_booster"]["model"]["trees"]) {
    auto& left = tree["left_children"];
    auto& right = tree["right_children"];
    const auto& feature = tree["split_indices"];
    auto& cond = tree["split_conditions"];
    auto& default_left = tree["default_left"];
    const size_t n = left.size();
    if (right.size() != n || feature.size() != n || cond.size() != n || default_left.size() != n) {
      return absl::InvalidArgumentError("xgboost model: malformed tree");
    }
    // XGBoost's own predictor takes the right child to be left + 1, so children are never re-pointed: where 0
    // must go right and 1 left, the two sibling subtrees trade places (their node contents are swapped, and
    // their children's parent links fixed). Children always come after their parent, so a swapped subtree is
    // rewritten when the loop reaches it.
    auto swap_nodes = [&tree, &left, &right](int64_t a, int64_t b) {
      for (const char* field : {"left_children", "right_children", "split_indices", "split_conditions", "default_left",
                                "base_weights", "loss_changes", "sum_hessian", "split_type"}) {
        if (!tree.contains(field) || tree[field].size() <= static_cast<size_t>(std::max(a, b))) continue;
        std::swap(tree[field][a], tree[field][b]);
      }
      if (!tree.contains("parents")) return;
      for (int64_t node : {a, b}) {
        for (int64_t child : {left[node].get<int64_t>(), right[node].get<int64_t>()}) {
          if (child >= 0) tree["parents"][child] = node;
        }
      }
    };
    for (size_t i = 0; i < n; ++i) {
      const int64_t f = feature[i].get<int64_t>();
      if (left[i].get<int64_t>() < 0 || f < 0 || static_cast<size_t>(f) >= zero_is_missing.size() ||
          !zero_is_missing[f]) {
        continue;
      }
      const int64_t l = left[i].get<int64_t>(), r = right[i].get<int64_t>();
      if (r != l + 1 || r >= static_cast<int64_t>(n))
        return absl::InvalidArgumentError("xgboost model: siblings apart");
      const bool missing_left =
          default_left[i].is_boolean() ? default_left[i].get<bool>() : default_left[i].get<int>() != 0;
      const bool one_left = 1.0f < cond[i].get<float>();
      float threshold = 0.5f;  // 0 left, 1 right
      if (missing_left == one_left) {
        threshold = missing_left ? 1e30f : -1e30f;  // a degenerate split: everything goes one way
      } else if (!missing_left) {
        swap_nodes(l, r);  // 0 went right and 1 left: swap the subtrees so that 0 is on the left
      }
      cond[i] = threshold;
      // A NaN in a 0/1 column is read as 0.
      const bool nan_left = threshold > 0;
      if (default_left[i].is_boolean()) {
        default_left[i] = nan_left;
      } else {
        default_left[i] = nan_left ? 1 : 0;
      }
    }
  }
  return j.dump();
}

void CompiledForest::Predict(const float* x, size_t rows, size_t cols, std::vector<float>* out) const {
  // Trees outer, rows inner: a tree's nodes stay in L1 while every row walks it. Each row still sums its trees in
  // the same order as XGBoost, so the result does not depend on the blocking.
  out->assign(rows, 0.0f);
  if (rows == 0) return;
  std::vector<float> padded;  // a split column the input lacks reads as missing
  if (cols < num_features) {
    padded.assign(rows * num_features, std::numeric_limits<float>::quiet_NaN());
    for (size_t r = 0; r < rows; ++r) std::copy(x + r * cols, x + (r + 1) * cols, padded.begin() + r * num_features);
    x = padded.data();
    cols = num_features;
  }
  float* sums = out->data();
  const Node* const node = nodes.data();
  constexpr size_t kBlock = 16;
  int32_t at[kBlock];
  for (size_t t = 0; t < roots.size(); ++t) {
    const int32_t root = roots[t];
    const int32_t depth = depths[t];
    for (size_t r0 = 0; r0 < rows; r0 += kBlock) {
      const size_t n = std::min(kBlock, rows - r0);
      const float* base = x + r0 * cols;
      for (size_t i = 0; i < n; ++i) at[i] = root;
      for (int32_t level = 0; level < depth; ++level) {
        for (size_t i = 0; i < n; ++i) {
          const Node& nd = node[at[i]];
          const float v = base[i * cols + (nd.feature & ~kDefaultLeft)];
          // NaN: "v >= t" is false (left), "!(v < t)" is true (right).
          const bool right = (nd.feature & kDefaultLeft) != 0 ? v >= nd.threshold : !(v < nd.threshold);
          at[i] = nd.left + static_cast<int32_t>(right);
        }
      }
      for (size_t i = 0; i < n; ++i) sums[r0 + i] += leaf_value[at[i]];
    }
  }
  for (size_t r = 0; r < rows; ++r) {
    const float margin = sums[r] + base_margin;
    sums[r] = logistic ? 1.0f / (1.0f + std::exp(-margin)) : margin;
  }
}

void XgbBooster::Compile() {
  bst_ulong len = 0;
  const char* data = nullptr;
  if (XGBoosterSaveModelToBuffer(handle_, R"({"format":"json"})", &len, &data) != 0) return;
  const std::string json(data, len);
  auto f = CompileForest(json);
  if (f.ok()) forest_ = std::move(*f);
}

XgbBooster::~XgbBooster() {
  if (handle_ != nullptr) XGBoosterFree(handle_);
}

absl::StatusOr<std::unique_ptr<XgbBooster>> XgbBooster::Train(const std::vector<float>& x, size_t rows, size_t cols,
                                                              const std::vector<float>& labels,
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
  if (!group_sizes.empty() && XGDMatrixSetUIntInfo(dm.get(), "group", group_sizes.data(), group_sizes.size()) != 0) {
    return XgbError("group");
  }
  return Boost(dm.get(), cols, p, {});
}

namespace {

// The data iterator behind TrainFromBlocks: XGBoost calls Next until it returns 0, twice (once to sketch the
// quantiles, once to fill the quantised index), with Reset in between.
struct BlockIterator {
  const XgbBooster::RowBlockFn* fill;
  const std::vector<size_t>* zero_columns;  // columns whose zeros are passed as missing
  size_t rows, cols, block_rows;
  const std::vector<float>* labels;
  const std::vector<float>* weights;
  DMatrixHandle proxy = nullptr;
  size_t next_row = 0;
  std::vector<float> buffer;
  std::string array;

  static void Reset(DataIterHandle self) { static_cast<BlockIterator*>(self)->next_row = 0; }
  static int Next(DataIterHandle self) { return static_cast<BlockIterator*>(self)->NextBlock(); }

  int NextBlock() {
    if (next_row >= rows) return 0;
    const size_t n = std::min(block_rows, rows - next_row);
    buffer.resize(n * cols);
    (*fill)(next_row, next_row + n, buffer.data());
    if (!zero_columns->empty()) {
      for (size_t r = 0; r < n; ++r) {
        float* row = buffer.data() + r * cols;
        for (size_t c : *zero_columns) {
          if (row[c] == 0.0f) row[c] = std::nanf("");
        }
      }
    }
    array = absl::StrFormat(R"({"data":[%u,true],"shape":[%u,%u],"typestr":"<f4","version":3})",
                            static_cast<uint64_t>(reinterpret_cast<uintptr_t>(buffer.data())), n, cols);
    // Errors cannot be returned through the callback; XGBoost then fails on the shape, which Train reports.
    (void)XGProxyDMatrixSetDataDense(proxy, array.c_str());
    (void)XGDMatrixSetFloatInfo(proxy, "label", labels->data() + next_row, n);
    if (!weights->empty()) (void)XGDMatrixSetFloatInfo(proxy, "weight", weights->data() + next_row, n);
    next_row += n;
    return 1;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<XgbBooster>> XgbBooster::TrainFromBlocks(const RowBlockFn& fill, size_t rows,
                                                                        size_t cols, const std::vector<float>& labels,
                                                                        const std::vector<float>& weights,
                                                                        const XgbParams& p,
                                                                        const std::vector<bool>& zero_is_missing,
                                                                        const std::vector<unsigned>& group_sizes) {
  if (rows == 0 || cols == 0 || labels.size() != rows || (!weights.empty() && weights.size() != rows) ||
      (!zero_is_missing.empty() && zero_is_missing.size() != cols)) {
    return absl::InvalidArgumentError(absl::StrFormat("xgboost train: bad shape rows=%d cols=%d", rows, cols));
  }
  std::vector<size_t> zero_columns;
  for (size_t c = 0; c < zero_is_missing.size(); ++c) {
    if (zero_is_missing[c]) zero_columns.push_back(c);
  }
  BlockIterator it;
  it.fill = &fill;
  it.zero_columns = &zero_columns;
  it.rows = rows;
  it.cols = cols;
  // ~8 MB of floats per block: large enough that per-block overhead vanishes, small beside the index.
  it.block_rows = std::max<size_t>(1024, (size_t{8} << 20) / (cols * sizeof(float)));
  it.labels = &labels;
  it.weights = &weights;
  DMatrix proxy;
  if (XGProxyDMatrixCreate(proxy.out()) != 0) return XgbError("proxy");
  it.proxy = proxy.get();
  // max_bin must match the booster's, or XGBoost refuses the matrix.
  const std::string config =
      absl::StrFormat(R"({"missing":NaN,"nthread":%d,"max_bin":%d})", std::max(p.nthread, 1), p.max_bin);
  DMatrix dm;
  if (XGQuantileDMatrixCreateFromCallback(&it, proxy.get(), nullptr, &BlockIterator::Reset, &BlockIterator::Next,
                                          config.c_str(), dm.out()) != 0) {
    return XgbError("quantile dmatrix");
  }
  if (!group_sizes.empty() && XGDMatrixSetUIntInfo(dm.get(), "group", group_sizes.data(), group_sizes.size()) != 0) {
    return XgbError("group");
  }
  return Boost(dm.get(), cols, p, zero_columns.empty() ? std::vector<bool>() : zero_is_missing);
}

absl::StatusOr<std::unique_ptr<XgbBooster>> XgbBooster::Boost(void* dmatrix, size_t cols, const XgbParams& p,
                                                              const std::vector<bool>& zero_is_missing) {
  BoosterHandle h = nullptr;
  DMatrixHandle mats[1] = {dmatrix};
  if (XGBoosterCreate(mats, 1, &h) != 0) return XgbError("create");
  std::unique_ptr<XgbBooster> booster(new XgbBooster(h, cols));
  const std::vector<std::pair<std::string, std::string>> params = {
      {"objective", p.objective},
      {"tree_method", "hist"},
      {"max_depth", absl::StrCat(p.max_depth)},
      {"eta", absl::StrCat(p.eta)},
      {"subsample", absl::StrCat(p.subsample)},
      {"colsample_bytree", absl::StrCat(p.colsample_bytree)},
      {"colsample_bynode", absl::StrCat(p.colsample_bynode)},
      {"min_child_weight", absl::StrCat(p.min_child_weight)},
      {"lambda", absl::StrCat(p.lambda)},
      {"max_bin", absl::StrCat(p.max_bin)},
      {"nthread", absl::StrCat(p.nthread)},
      {"seed", absl::StrCat(p.seed % 2147483647)},
      {"verbosity", "0"},
  };
  for (const auto& [k, v] : params) {
    if (XGBoosterSetParam(h, k.c_str(), v.c_str()) != 0) return XgbError("param");
  }
  for (int i = 0; i < p.num_rounds; ++i) {
    if (p.cancel != nullptr && p.cancel->load(std::memory_order_relaxed)) {
      return absl::CancelledError("training cancelled");
    }
    if (XGBoosterUpdateOneIter(h, i, dmatrix) != 0) return XgbError("update");
  }
  if (!zero_is_missing.empty()) {
    // Replace the trees by their 0/1 form: a fresh handle loaded from the rewritten JSON model.
    bst_ulong len = 0;
    const char* data = nullptr;
    if (XGBoosterSaveModelToBuffer(h, R"({"format":"json"})", &len, &data) != 0) return XgbError("save");
    auto rewritten = RouteZerosAsMissing(std::string_view(data, len), zero_is_missing);
    if (!rewritten.ok()) return rewritten.status();
    BoosterHandle plain = nullptr;
    if (XGBoosterCreate(nullptr, 0, &plain) != 0) return XgbError("create");
    booster.reset(new XgbBooster(plain, cols));
    h = plain;
    if (XGBoosterLoadModelFromBuffer(h, rewritten->data(), rewritten->size()) != 0) return XgbError("load");
  }
  // Prediction of a handful of rows is faster without OpenMP fan-out.
  if (XGBoosterSetParam(h, "nthread", "1") != 0) return XgbError("param");
  booster->Compile();
  return booster;
}

absl::StatusOr<std::unique_ptr<XgbBooster>> XgbBooster::Load(std::string_view bytes, size_t cols) {
  BoosterHandle h = nullptr;
  if (XGBoosterCreate(nullptr, 0, &h) != 0) return XgbError("create");
  std::unique_ptr<XgbBooster> booster(new XgbBooster(h, cols));
  if (XGBoosterLoadModelFromBuffer(h, bytes.data(), bytes.size()) != 0) return XgbError("load");
  if (XGBoosterSetParam(h, "nthread", "1") != 0) return XgbError("param");
  booster->Compile();
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
  if (forest_.has_value()) {
    forest_->Predict(x, rows, cols_, out);
    return absl::OkStatus();
  }
  return PredictWithXgboost(x, rows, out);
}

absl::Status XgbBooster::PredictWithXgboost(const float* x, size_t rows, std::vector<float>* out) const {
  out->clear();
  if (rows == 0) return absl::OkStatus();
  const std::string array = absl::StrFormat(R"({"data":[%u,true],"shape":[%u,%u],"typestr":"<f4","version":3})",
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
