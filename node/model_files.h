// The models folder of a node: <dir>/<model>.<FORMAT>.gguf (node/make_models.py's layout), and each model's
// descriptor read once from its F16 file.
#ifndef ACCELSEL_NODE_MODEL_FILES_H_
#define ACCELSEL_NODE_MODEL_FILES_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"
#include "node/catalogue.h"

namespace accelsel::node {

// Not thread-safe (the descriptor cache); the agent and the sweep use one from one thread.
class ModelFiles {
 public:
  explicit ModelFiles(std::string dir) : dir_(std::move(dir)) {}

  std::string Path(const std::string& model, WeightFormat format) const;
  bool Exists(const std::string& model, WeightFormat format) const;

  // The model as accelsel knows it: DescribeModel of the F16 file, named `model`. The F16 file describes the model
  // whatever format a strategy runs, because the format is the strategy's choice, not the task's; so every
  // strategy of a job shares one task context. NotFound when the F16 file is missing.
  absl::StatusOr<v1::ModelDescriptor> Describe(const std::string& model);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::map<std::string, v1::ModelDescriptor> described_;
};

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_MODEL_FILES_H_
