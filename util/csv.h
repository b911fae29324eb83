// The one CSV reader: a header row, ',' separated, values quoted with ' or ", doubled-quote and backslash escapes,
// '?' for missing, comment ('#') and blank lines skipped. Bad input is a Status with a line number; it never throws.
// The record splitter and line helpers are shared with the ARFF reader (eval/arff.h).
#ifndef ACCELSEL_UTIL_CSV_H_
#define ACCELSEL_UTIL_CSV_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace accelsel::util {

// InvalidArgument "line N: what".
absl::Status LineError(int line, absl::string_view what);

// The line starting at `*pos` without its line end ("\n" or "\r\n"); advances `*pos` past it.
absl::string_view NextLine(absl::string_view text, size_t* pos);

struct Field {
  std::string value;
  bool quoted = false;
};

// Splits one record starting at `*pos` in `text`; advances `*pos` past the record's line end. Quoted values
// may span lines. `line` is incremented per newline consumed (for messages).
absl::StatusOr<std::vector<Field>> SplitRecord(absl::string_view text, size_t* pos, char delimiter, int* line);

// Reads CSV text one record at a time by the rules above (BOM, blank and comment lines, quoting), for callers that
// go on past a malformed record: an importer that skips bad rows and says why. ParseCsv is built on it.
class CsvRecordReader {
 public:
  explicit CsvRecordReader(absl::string_view text);
  // False at the end of the text. Otherwise `*line` is the record's first line and `*fields` its values, or an
  // InvalidArgument "line N: why" for a malformed record; reading then resumes on the line after the record's first,
  // so a stray quote costs its own line, not the rest of the file.
  bool Next(int* line, absl::StatusOr<std::vector<std::string>>* fields);

 private:
  absl::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
};

struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each row has header.size() values; "" = empty
  int Column(absl::string_view name) const;    // -1 if absent (exact, then case-insensitive match)
};

// Lines starting with '#' and blank lines are skipped. Rows with a different field count are an error.
absl::StatusOr<CsvTable> ParseCsv(absl::string_view text);
absl::StatusOr<CsvTable> ReadCsvFile(const std::string& path);

// Parses a number ("12", "1e3", " 4.5 "); false for missing markers ("", "?", "NA", "nan") and garbage.
bool ParseNumber(std::string_view s, double* out);
// Overloads so that std::string, std::string_view and absl::string_view (a distinct type in Debian's Abseil)
// all work without ambiguity.
inline bool ParseNumber(const std::string& s, double* out) { return ParseNumber(std::string_view(s), out); }
inline bool ParseNumber(absl::string_view s, double* out) {
  return ParseNumber(std::string_view(s.data(), s.size()), out);
}

}  // namespace accelsel::util

#endif  // ACCELSEL_UTIL_CSV_H_
