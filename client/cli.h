// The `accelsel` command line: subcommand dispatch, server calls and output (tables for people, --json for
// scripts). main() is a thin wrapper so tests can run whole commands in-process.
#ifndef ACCELSEL_CLIENT_CLI_H_
#define ACCELSEL_CLIENT_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "accelsel/v1/accelsel.pb.h"

namespace accelsel::client::cli {

// Runs one command; `args` excludes the program name. Returns the exit code: 0 on success, 2 on a usage
// error, 1 on any other error; errors print exactly one line "accelsel: <reason>" on `err`.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Aligned text table: columns padded to their widest cell, two spaces apart, no trailing blanks.
std::string FormatTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// The human-readable rendering of a selection (what `accelsel select` prints without --json).
std::string FormatSelection(const v1::SelectAcceleratorResponse& response);

// The human-readable rendering of live quality (what `accelsel quality` prints without --json).
std::string FormatLiveQuality(const v1::GetLiveQualityResponse& response);

// JSON as every --json prints it, one style for scripts: the proto field names (snake_case, e.g. joined_reports),
// default values included, enums by name, and 64-bit integers as JSON numbers instead of the mapping's strings.
// The proto JSON parser reads it back.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace accelsel::client::cli

#endif  // ACCELSEL_CLIENT_CLI_H_
