// CSV and ARFF readers; see tabular.h.
#include "model/eval/tabular.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace accelsel::model::eval {
namespace {

absl::Status ParseError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
}

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

absl::string_view NextLine(absl::string_view text, size_t* pos) {
  const size_t start = *pos;
  size_t end = text.find('\n', start);
  if (end == absl::string_view::npos) end = text.size();
  *pos = end < text.size() ? end + 1 : end;
  absl::string_view line = text.substr(start, end - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

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
      if (!closed) return ParseError(start_line, "unterminated quoted value");
      while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
      if (i < n && text[i] != delimiter && text[i] != '\n') {
        return ParseError(*line, "text after a closing quote");
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

absl::StatusOr<CsvTable> ParseCsv(absl::string_view text) {
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
  CsvTable t;
  size_t pos = 0;
  int line = 1;
  bool have_header = false;
  while (pos < text.size()) {
    // Skip blank and comment lines without consuming a record.
    size_t probe = pos;
    const absl::string_view l = NextLine(text, &probe);
    if (IsBlank(l) || absl::StartsWith(absl::StripLeadingAsciiWhitespace(l), "#")) {
      pos = probe;
      ++line;
      continue;
    }
    const int record_line = line;
    auto fields = SplitRecord(text, &pos, ',', &line);
    if (!fields.ok()) return fields.status();
    std::vector<std::string> values;
    values.reserve(fields->size());
    for (auto& f : *fields) values.push_back(std::move(f.value));
    if (!have_header) {
      t.header = std::move(values);
      have_header = true;
      continue;
    }
    if (values.size() != t.header.size()) {
      return ParseError(record_line, absl::StrCat("expected ", t.header.size(), " fields, found ", values.size()));
    }
    t.rows.push_back(std::move(values));
  }
  if (!have_header) return absl::InvalidArgumentError("CSV: no header row");
  return t;
}

int ArffTable::Column(absl::string_view name) const {
  for (size_t i = 0; i < attributes.size(); ++i) {
    if (absl::EqualsIgnoreCase(attributes[i].name, name)) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<ArffTable> ParseArff(absl::string_view text) {
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);
  ArffTable t;
  size_t pos = 0;
  int line = 1;
  bool in_data = false;
  while (pos < text.size()) {
    size_t probe = pos;
    const absl::string_view raw = NextLine(text, &probe);
    const absl::string_view l = absl::StripAsciiWhitespace(raw);
    if (l.empty() || l[0] == '%') {
      pos = probe;
      ++line;
      continue;
    }
    if (!in_data) {
      pos = probe;
      const int this_line = line++;
      if (l[0] != '@') return ParseError(this_line, "expected @relation, @attribute or @data");
      const size_t sp = l.find_first_of(" \t");
      const std::string keyword = absl::AsciiStrToLower(l.substr(0, sp));
      absl::string_view rest = sp == absl::string_view::npos ? "" : absl::StripAsciiWhitespace(l.substr(sp));
      if (keyword == "@relation") {
        t.relation = std::string(rest);
      } else if (keyword == "@data") {
        in_data = true;
      } else if (keyword == "@attribute") {
        ArffAttribute a;
        // Name: quoted (either style) or up to whitespace.
        size_t rpos = 0;
        int dummy = this_line;
        if (!rest.empty() && (rest[0] == '\'' || rest[0] == '"')) {
          const char q = rest[0];
          const size_t close = rest.find(q, 1);
          if (close == absl::string_view::npos) return ParseError(this_line, "unterminated attribute name");
          a.name = std::string(rest.substr(1, close - 1));
          rpos = close + 1;
        } else {
          rpos = rest.find_first_of(" \t{");
          if (rpos == absl::string_view::npos) return ParseError(this_line, "attribute without a type");
          a.name = std::string(rest.substr(0, rpos));
        }
        absl::string_view type = absl::StripAsciiWhitespace(rest.substr(std::min(rpos, rest.size())));
        if (type.empty()) return ParseError(this_line, "attribute without a type");
        if (type[0] == '{') {
          const size_t close = type.rfind('}');
          if (close == absl::string_view::npos || close == 0) return ParseError(this_line, "unterminated {levels}");
          absl::string_view inner = type.substr(1, close - 1);
          size_t ipos = 0;
          auto levels = SplitRecord(inner, &ipos, ',', &dummy);
          if (!levels.ok()) return ParseError(this_line, levels.status().message());
          for (auto& f : *levels) a.levels.push_back(std::move(f.value));
          a.type = ArffAttribute::Type::kNominal;
        } else {
          const std::string ty = absl::AsciiStrToLower(type.substr(0, type.find_first_of(" \t")));
          if (ty == "numeric" || ty == "real" || ty == "integer") {
            a.type = ArffAttribute::Type::kNumeric;
          } else if (ty == "string") {
            a.type = ArffAttribute::Type::kString;
          } else if (ty == "date") {
            a.type = ArffAttribute::Type::kDate;
          } else {
            return ParseError(this_line, absl::StrCat("unknown attribute type '", ty, "'"));
          }
        }
        t.attributes.push_back(std::move(a));
      } else {
        return ParseError(this_line, absl::StrCat("unknown keyword ", keyword));
      }
      continue;
    }
    if (l[0] == '{') return ParseError(line, "sparse ARFF rows are not supported");
    const int record_line = line;
    auto fields = SplitRecord(text, &pos, ',', &line);
    if (!fields.ok()) return fields.status();
    if (fields->size() != t.attributes.size()) {
      return ParseError(record_line,
                        absl::StrCat("expected ", t.attributes.size(), " values, found ", fields->size()));
    }
    std::vector<std::optional<std::string>> row;
    row.reserve(fields->size());
    for (auto& f : *fields) {
      if (!f.quoted && f.value == "?") {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::move(f.value));
      }
    }
    t.rows.push_back(std::move(row));
  }
  if (t.attributes.empty()) return absl::InvalidArgumentError("ARFF: no attributes");
  return t;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return ss.str();
}

absl::StatusOr<CsvTable> ReadCsvFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto t = ParseCsv(*text);
  if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat(path, ": ", t.status().message()));
  return t;
}

absl::StatusOr<ArffTable> ReadArffFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto t = ParseArff(*text);
  if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat(path, ": ", t.status().message()));
  return t;
}

}  // namespace accelsel::model::eval
