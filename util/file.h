// Whole-file reads, the one way files are read into memory (tables, token files, PEM files, fixtures).
#ifndef ACCELSEL_UTIL_FILE_H_
#define ACCELSEL_UTIL_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace accelsel::util {

// The file's bytes; "-" reads standard input to its end (the command-line convention, for every file a command
// reads: `accelsel report --jsonl -`, `accelsel select --context -`). NotFound "cannot open PATH: <strerror>" when it
// cannot be opened, DataLoss "read error on PATH" when reading fails part way.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace accelsel::util

#endif  // ACCELSEL_UTIL_FILE_H_
