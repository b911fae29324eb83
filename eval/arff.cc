// The ARFF reader for ASlib scenarios (see arff.h).
#include "eval/arff.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "util/csv.h"
#include "util/file.h"

namespace accelsel::eval {

using util::ReadFile;
using util::SplitRecord;

using util::Field;
using util::LineError;
using util::NextLine;
using util::ReadFile;
using util::SplitRecord;

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
      if (l[0] != '@') return LineError(this_line, "expected @relation, @attribute or @data");
      const size_t sp = l.find_first_of(" \t");
      std::string keyword = absl::AsciiStrToLower(l.substr(0, sp));
      // Tolerate stray punctuation after a keyword ("@DATA," is found in a published ASlib file).
      while (keyword.size() > 1 && !std::isalnum(static_cast<unsigned char>(keyword.back()))) keyword.pop_back();
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
          if (close == absl::string_view::npos) return LineError(this_line, "unterminated attribute name");
          a.name = std::string(rest.substr(1, close - 1));
          rpos = close + 1;
        } else {
          rpos = rest.find_first_of(" \t{");
          if (rpos == absl::string_view::npos) return LineError(this_line, "attribute without a type");
          a.name = std::string(rest.substr(0, rpos));
        }
        absl::string_view type = absl::StripAsciiWhitespace(rest.substr(std::min(rpos, rest.size())));
        if (type.empty()) return LineError(this_line, "attribute without a type");
        if (type[0] == '{') {
          const size_t close = type.rfind('}');
          if (close == absl::string_view::npos || close == 0) return LineError(this_line, "unterminated {levels}");
          absl::string_view inner = type.substr(1, close - 1);
          size_t ipos = 0;
          auto levels = SplitRecord(inner, &ipos, ',', &dummy);
          if (!levels.ok()) return LineError(this_line, levels.status().message());
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
            return LineError(this_line, absl::StrCat("unknown attribute type '", ty, "'"));
          }
        }
        t.attributes.push_back(std::move(a));
      } else {
        return LineError(this_line, absl::StrCat("unknown keyword ", keyword));
      }
      continue;
    }
    if (l[0] == '{') return LineError(line, "sparse ARFF rows are not supported");
    const int record_line = line;
    auto fields = SplitRecord(text, &pos, ',', &line);
    if (!fields.ok()) return fields.status();
    if (fields->size() != t.attributes.size()) {
      return LineError(record_line, absl::StrCat("expected ", t.attributes.size(), " values, found ", fields->size()));
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

absl::StatusOr<ArffTable> ReadArffFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto t = ParseArff(*text);
  if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat(path, ": ", t.status().message()));
  return t;
}

}  // namespace accelsel::eval
