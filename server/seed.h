// Seeding an empty store with the bundled LLM-Inference-Bench table, through the same mapping as
// `accelsel import`, so that a fresh server gives real answers at once.
#ifndef ACCELSEL_SERVER_SEED_H_
#define ACCELSEL_SERVER_SEED_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::server {

struct SeedData {
  std::vector<v1::Strategy> strategies;
  std::vector<v1::RunReport> reports;
};

absl::StatusOr<SeedData> LoadSeed(const std::string& csv_path, const std::string& descriptors_dir);

}  // namespace accelsel::server

#endif  // ACCELSEL_SERVER_SEED_H_
