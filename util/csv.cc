// The one CSV reader (see csv.h).
#include "util/csv.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "util/file.h"

namespace accelsel::util {

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
}

absl::string_view NextLine(absl::string_view text, size_t* pos) {
  const size_t start = *pos;
  size_t end = text.find('\n', start);
  if (end == absl::string_view::npos) end = text.size();
  *pos = end < text.size() ? end + 1 : end;
  absl::string_view line = text.substr(start, end - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

namespace {

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

}  // namespace

absl::StatusOr<std::vector<Field>> SplitRecord(absl::string_view text, size_t* pos, char delimiter, int* line) {
  std::vector<Field> fields;
  size_t i = *pos;
  const size_t n = text.size();
  const int start_line = *line;
  while (true) {
    Field f;
    while (i < n && (text[i] == ' ' || text[i] == '\t') && text[i] != delimiter) ++i;
    if (i < n && (text[i] == '"' || text[i] == '\'')) {
      const char q = text[i++];
      f.quoted = true;
      bool closed = false;
      while (i < n) {
        const char c = text[i];
        if (c == '\\' && i + 1 < n && (text[i + 1] == q || text[i + 1] == '\\')) {
          f.value.push_back(text[i + 1]);
          i += 2;
        } else if (c == q && i + 1 < n && text[i + 1] == q) {
          f.value.push_back(q);
          i += 2;
        } else if (c == q) {
          ++i;
          closed = true;
          break;
        } else {
          if (c == '\n') ++*line;
          f.value.push_back(c);
          ++i;
        }
      }
      if (!closed) return LineError(start_line, "unterminated quoted value");
      while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
      if (i < n && text[i] != delimiter && text[i] != '\n') {
        return LineError(*line, "text after a closing quote");
      }
    } else {
      const size_t s = i;
      while (i < n && text[i] != delimiter && text[i] != '\n') ++i;
      f.value = std::string(absl::StripAsciiWhitespace(text.substr(s, i - s)));
    }
    fields.push_back(std::move(f));
    if (i < n && text[i] == delimiter) {
      ++i;
      continue;
    }
    if (i < n && text[i] == '\n') {
      ++i;
      ++*line;
    }
    break;
  }
  *pos = i;
  return fields;
}

int CsvTable::Column(absl::string_view name) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  for (size_t i = 0; i < header.size(); ++i) {
    if (absl::EqualsIgnoreCase(header[i], name)) return static_cast<int>(i);
  }
  return -1;
}

CsvRecordReader::CsvRecordReader(absl::string_view text) : text_(text) {
  if (absl::StartsWith(text_, "\xEF\xBB\xBF")) text_.remove_prefix(3);  // UTF-8 BOM
}

bool CsvRecordReader::Next(int* line, absl::StatusOr<std::vector<std::string>>* fields) {
  while (pos_ < text_.size()) {
    // Skip blank and comment lines without consuming a record.
    size_t probe = pos_;
    const absl::string_view l = NextLine(text_, &probe);
    if (IsBlank(l) || absl::StartsWith(absl::StripLeadingAsciiWhitespace(l), "#")) {
      pos_ = probe;
      ++line_;
      continue;
    }
    *line = line_;
    auto split = SplitRecord(text_, &pos_, ',', &line_);
    if (!split.ok()) {
      pos_ = probe;  // resume after the record's first line
      line_ = *line + 1;
      *fields = split.status();
      return true;
    }
    std::vector<std::string> values;
    values.reserve(split->size());
    for (auto& f : *split) values.push_back(std::move(f.value));
    *fields = std::move(values);
    return true;
  }
  return false;
}

absl::StatusOr<CsvTable> ParseCsv(absl::string_view text) {
  CsvTable t;
  CsvRecordReader reader(text);
  int line = 0;
  absl::StatusOr<std::vector<std::string>> values;
  bool have_header = false;
  while (reader.Next(&line, &values)) {
    if (!values.ok()) return values.status();
    if (!have_header) {
      t.header = *std::move(values);
      have_header = true;
      continue;
    }
    if (values->size() != t.header.size()) {
      return LineError(line, absl::StrCat("expected ", t.header.size(), " fields, found ", values->size()));
    }
    t.rows.push_back(*std::move(values));
  }
  if (!have_header) return absl::InvalidArgumentError("CSV: no header row");
  return t;
}

absl::StatusOr<CsvTable> ReadCsvFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto t = ParseCsv(*text);
  if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat(path, ": ", t.status().message()));
  return t;
}

bool ParseNumber(std::string_view sv, double* out) {
  absl::string_view s = absl::StripAsciiWhitespace(absl::string_view(sv.data(), sv.size()));
  if (s.empty() || s == "?" || s == "NA" || s == "na" || s == "N/A" || s == "null") return false;
  double v = 0;
  if (!absl::SimpleAtod(s, &v) || std::isnan(v)) return false;
  *out = v;
  return true;
}

}  // namespace accelsel::util
