// The JSON-lines logger: field encoding, the spdlog logger behind it, and gRPC's log routed into it.
#include "util/log.h"

#include <charconv>
#include <cmath>
#include <memory>
#include <ostream>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/support/log.h"
#include "spdlog/logger.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace accelsel::log {

namespace internal {
std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
}  // namespace internal

namespace {

constexpr std::string_view kLevelNames[] = {"debug", "info", "warn", "error"};

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), or 0 if it is not one.
size_t Utf8SequenceLength(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return n;
}

// The longest prefix of `s` of at most `max` bytes that does not end inside a UTF-8 sequence.
std::string_view CutAtCharacter(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max;
  // Step back over continuation bytes (at most 3) to the first byte of the sequence the cut falls in.
  for (int i = 0; i < 3 && end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80; ++i) --end;
  return s.substr(0, end);
}

// What a field or line goes to: replaced by Init, read by every Write. Never destroyed (gRPC may log from its
// threads while the process exits).
struct Sink {
  absl::Mutex mu;
  std::shared_ptr<spdlog::logger> logger ABSL_GUARDED_BY(mu);
};

Sink& TheSink() {
  static Sink* sink = new Sink();
  return *sink;
}

std::shared_ptr<spdlog::logger> MakeLogger(std::ostream* out) {
  spdlog::sink_ptr sink;
  if (out == nullptr) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();  // fwrite + fflush per line, under a mutex
  } else {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out, /*force_flush=*/true);
  }
  auto logger = std::make_shared<spdlog::logger>("accelsel", std::move(sink));
  // The level name is written by Write ("warn", not spdlog's "warning"), so the pattern only adds the time.
  logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ",%v})", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::trace);  // the filtering is ours (Enabled), before any formatting
  return logger;
}

std::shared_ptr<spdlog::logger> CurrentLogger() {
  Sink& sink = TheSink();
  absl::MutexLock lock(&sink.mu);
  if (sink.logger == nullptr) sink.logger = MakeLogger(nullptr);
  return sink.logger;
}

spdlog::level::level_enum SpdlogLevel(Level level) {
  switch (level) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::err;
}

void GrpcLog(gpr_log_func_args* args) {
  Level level = Level::kError;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = Level::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = Level::kInfo;
  if (!Enabled(level)) return;
  const absl::string_view message = absl::StripTrailingAsciiWhitespace(args->message == nullptr ? "" : args->message);
  Write(level, "grpc",
        {{"file", args->file == nullptr ? "" : args->file},
         {"line", args->line},
         {"message", std::string_view(message.data(), message.size())}});
}

}  // namespace

std::string_view LevelName(Level level) { return kLevelNames[static_cast<int>(level)]; }

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kLevelNames[i]) return static_cast<Level>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("log level must be debug, info, warn or error (got \"",
                                                 absl::CEscape(absl::string_view(name.data(), name.size())), "\")"));
}

bool AbslParseFlag(absl::string_view text, Level* level, std::string* error) {
  auto parsed = ParseLevel(std::string_view(text.data(), text.size()));
  if (!parsed.ok()) {
    *error = std::string(parsed.status().message());
    return false;
  }
  *level = *parsed;
  return true;
}

std::string AbslUnparseFlag(Level level) { return std::string(LevelName(level)); }

void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::string_view kept = CutAtCharacter(s, kMaxValueBytes);
  out->push_back('"');
  size_t i = 0;
  while (i < kept.size()) {
    const unsigned char c = static_cast<unsigned char>(kept[i]);
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(kept.substr(i));
      if (n == 0) {
        out->append("\\ufffd");  // one replacement character per byte that starts no valid sequence
        ++i;
      } else {
        out->append(kept.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  if (kept.size() < s.size()) out->append("...");
  out->push_back('"');
}

void Field::AppendTo(std::string* out) const {
  AppendJsonString(out, key_);
  out->push_back(':');
  char buf[32];
  switch (kind_) {
    case Kind::kString: AppendJsonString(out, str_); return;
    case Kind::kBool: out->append(bool_ ? "true" : "false"); return;
    case Kind::kInt: out->append(buf, std::to_chars(buf, buf + sizeof(buf), int_).ptr); return;
    case Kind::kUint: out->append(buf, std::to_chars(buf, buf + sizeof(buf), uint_).ptr); return;
    case Kind::kDouble:
      if (!std::isfinite(double_)) {
        out->append("null");
      } else {
        out->append(buf, std::to_chars(buf, buf + sizeof(buf), double_).ptr);  // shortest exact form
      }
      return;
  }
}

void Init(Level level, std::ostream* out) {
  auto logger = MakeLogger(out);
  {
    Sink& sink = TheSink();
    absl::MutexLock lock(&sink.mu);
    sink.logger = std::move(logger);
  }
  SetLevel(level);
  gpr_set_log_function(&GrpcLog);
}

void SetLevel(Level level) { internal::min_level.store(static_cast<int>(level), std::memory_order_relaxed); }

void Write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  WriteFields(level, event, std::span<const Field>(fields.begin(), fields.size()));
}

void WriteFields(Level level, std::string_view event, std::span<const Field> fields) {
  if (!Enabled(level)) return;
  std::string line;
  line.reserve(64 + 48 * fields.size());
  line.append(R"("level":")");
  line.append(LevelName(level));
  line.append(R"(","event":)");
  AppendJsonString(&line, event);
  for (const Field& f : fields) {
    line.push_back(',');
    f.AppendTo(&line);
  }
  CurrentLogger()->log(SpdlogLevel(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace accelsel::log
