// Model file paths and cached descriptors.
#include "node/model_files.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "node/gguf.h"

namespace accelsel::node {

std::string ModelFiles::Path(const std::string& model, WeightFormat format) const {
  return absl::StrCat(dir_, "/", model, ".", WeightFormatName(format), ".gguf");
}

bool ModelFiles::Exists(const std::string& model, WeightFormat format) const {
  std::error_code ec;
  return std::filesystem::is_regular_file(Path(model, format), ec);
}

absl::StatusOr<v1::ModelDescriptor> ModelFiles::Describe(const std::string& model) {
  auto it = described_.find(model);
  if (it != described_.end()) return it->second;
  auto info = ReadGgufInfo(Path(model, WeightFormat::kF16));
  if (!info.ok()) return info.status();
  return described_.emplace(model, DescribeModel(*info, model)).first->second;
}

}  // namespace accelsel::node
