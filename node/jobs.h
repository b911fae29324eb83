// The node's job file: JSON lines, one inference job per line (model, prompt and output lengths, parallel
// sequences). A bad line is refused with its line number, the field and the rule it breaks.
#ifndef ACCELSEL_NODE_JOBS_H_
#define ACCELSEL_NODE_JOBS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace accelsel::node {

// Bounds of a job's fields. Lengths are capped so that a typo cannot ask a 2-core CPU for hours of work or a
// context that cannot be allocated; the cap is the test models' trained context length.
inline constexpr uint32_t kMaxJobTokens = 4096;
inline constexpr uint32_t kMaxJobParallel = 64;

struct Job {
  std::string id;          // "id": unique in the file, 1 to 128 characters of the accelsel id alphabet
  std::string model;       // "model": file stem under the models folder, e.g. "llama-30m" ([A-Za-z0-9._-])
  uint32_t prompt_tokens;  // "prompt_tokens": 1 to kMaxJobTokens, per sequence
  uint32_t output_tokens;  // "output_tokens": 1 to kMaxJobTokens generated per sequence (end-of-sequence ignored)
  uint32_t parallel = 1;   // "parallel": concurrent sequences, 1 to kMaxJobParallel (optional, default 1)
  // "seed": optional; seeds the random prompt's token ids. Default: a stable hash of the id, so a job's prompt is
  // the same on every run and every machine.
  uint64_t seed = 0;
  int line = 0;  // 1-based line in the file, for messages
};

// Parses JSON-lines text. Blank lines and lines starting with '#' are skipped. Any other line must be one JSON
// object with exactly the fields above (an unknown field is refused, so a misspelt optional field is not silently
// ignored). InvalidArgument "<source>:<line>: <field>: <rule>" on the first bad line; an empty file is refused too.
absl::StatusOr<std::vector<Job>> ParseJobs(absl::string_view text, absl::string_view source);

// ReadFile + ParseJobs, with the path as the source.
absl::StatusOr<std::vector<Job>> ReadJobsFile(const std::string& path);

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_JOBS_H_
