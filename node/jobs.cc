// JSONL job parsing with nlohmann-json (no exceptions: parse errors come back as discarded values).
#include "node/jobs.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "util/csv.h"
#include "util/file.h"
#include "util/hash.h"

namespace accelsel::node {
namespace {

bool IsIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '/' ||
         c == '+' || c == '=' || c == '-';
}

// Model names become file names: no '/' (no leaving the models folder) and no ':' or other specials.
bool IsModelChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

class LineParser {
 public:
  LineParser(absl::string_view source, int line) : source_(source), line_(line) {}

  absl::Status Error(absl::string_view field, absl::string_view rule) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", line_, ": ", field, ": ", rule));
  }

  absl::StatusOr<std::string> String(const nlohmann::json& obj, const char* field, size_t max_len,
                                     bool (*allowed)(char), absl::string_view alphabet) const {
    auto it = obj.find(field);
    if (it == obj.end()) return Error(field, "required");
    if (!it->is_string()) return Error(field, "must be a string");
    const std::string value = it->get<std::string>();
    if (value.empty() || value.size() > max_len) {
      return Error(field, absl::StrCat("must be 1 to ", max_len, " characters"));
    }
    for (char c : value) {
      if (!allowed(c)) return Error(field, absl::StrCat("must use only ", alphabet));
    }
    if (value == "." || value == "..") return Error(field, "must not be . or ..");
    return value;
  }

  // An integer field in [lo, hi]; `fallback` when absent and not required.
  absl::StatusOr<uint64_t> Integer(const nlohmann::json& obj, const char* field, uint64_t lo, uint64_t hi,
                                   bool required, uint64_t fallback) const {
    auto it = obj.find(field);
    if (it == obj.end()) {
      if (required) return Error(field, "required");
      return fallback;
    }
    const std::string range = absl::StrCat("must be an integer from ", lo, " to ", hi);
    if (!it->is_number_integer()) return Error(field, range);
    if (it->is_number_unsigned()) {
      const uint64_t v = it->get<uint64_t>();
      if (v < lo || v > hi) return Error(field, range);
      return v;
    }
    const int64_t v = it->get<int64_t>();
    if (v < 0 || static_cast<uint64_t>(v) < lo || static_cast<uint64_t>(v) > hi) return Error(field, range);
    return static_cast<uint64_t>(v);
  }

 private:
  absl::string_view source_;
  int line_;
};

absl::StatusOr<Job> ParseJobLine(absl::string_view text, absl::string_view source, int line) {
  LineParser p(source, line);
  const nlohmann::json obj = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) return p.Error("line", "is not valid JSON");
  if (!obj.is_object()) return p.Error("line", "must be a JSON object");
  static const std::set<std::string> kFields = {"id", "model", "prompt_tokens", "output_tokens", "parallel", "seed"};
  for (const auto& [key, value] : obj.items()) {
    if (kFields.count(key) == 0) {
      return p.Error(key, "unknown field (known: id, model, prompt_tokens, output_tokens, parallel, seed)");
    }
  }
  Job job;
  job.line = line;
  auto id = p.String(obj, "id", 128, IsIdChar, "[A-Za-z0-9._:/+=-]");
  if (!id.ok()) return id.status();
  job.id = *std::move(id);
  auto model = p.String(obj, "model", 128, IsModelChar, "[A-Za-z0-9._-]");
  if (!model.ok()) return model.status();
  job.model = *std::move(model);
  auto prompt = p.Integer(obj, "prompt_tokens", 1, kMaxJobTokens, true, 0);
  if (!prompt.ok()) return prompt.status();
  auto output = p.Integer(obj, "output_tokens", 1, kMaxJobTokens, true, 0);
  if (!output.ok()) return output.status();
  auto parallel = p.Integer(obj, "parallel", 1, kMaxJobParallel, false, 1);
  if (!parallel.ok()) return parallel.status();
  auto seed = p.Integer(obj, "seed", 0, UINT64_MAX, false, util::Fnv1a64(job.id));
  if (!seed.ok()) return seed.status();
  job.prompt_tokens = static_cast<uint32_t>(*prompt);
  job.output_tokens = static_cast<uint32_t>(*output);
  job.parallel = static_cast<uint32_t>(*parallel);
  job.seed = *seed;
  return job;
}

}  // namespace

absl::StatusOr<std::vector<Job>> ParseJobs(absl::string_view text, absl::string_view source) {
  std::vector<Job> jobs;
  std::set<std::string> ids;
  size_t pos = 0;
  int line = 0;
  while (pos < text.size()) {
    ++line;
    const absl::string_view raw = util::NextLine(text, &pos);
    const absl::string_view content = absl::StripAsciiWhitespace(raw);
    if (content.empty() || content[0] == '#') continue;
    auto job = ParseJobLine(content, source, line);
    if (!job.ok()) return job.status();
    if (!ids.insert(job->id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line, ": id: \"", job->id, "\" repeats an earlier job"));
    }
    jobs.push_back(*std::move(job));
  }
  if (jobs.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": no jobs"));
  return jobs;
}

absl::StatusOr<std::vector<Job>> ReadJobsFile(const std::string& path) {
  auto text = util::ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseJobs(*text, path);
}

}  // namespace accelsel::node
