// Structured logs for operators: one JSON object per line on stderr, on spdlog (its thread-safe sink and its
// timestamp formatter):
//   {"ts":"2026-12-06T03:40:01.123Z","level":"info","event":"retrain_end","version":7,"promoted":true}
// Every event and its fields are listed in docs/OPERATIONS.md, "Logs". "ts", "level" and "event" are written on
// every line; fields must not reuse those names.
//
//   log::Info("retrain_end", {{"version", info.version()}, {"holdout_mape", mape}, {"note", info.note()}});
//
// Thread safety: every function may be called from any thread at once; a line is written whole or not at all.
// A call whose level is below the configured one costs one relaxed atomic load (the fields' views are built, their
// values are not formatted).
#ifndef ACCELSEL_UTIL_LOG_H_
#define ACCELSEL_UTIL_LOG_H_

#include <atomic>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace accelsel::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error": the --log_level values and the "level" of each line.
std::string_view LevelName(Level level);
absl::StatusOr<Level> ParseLevel(std::string_view name);
// absl flag support, so a binary can declare ABSL_FLAG(accelsel::log::Level, log_level, ...).
bool AbslParseFlag(absl::string_view text, Level* level, std::string* error);
std::string AbslUnparseFlag(Level level);

// One "key": value of a line. A field holds views of its key and string value, not copies: build the fields in
// the call that writes them (temporaries such as absl::StrCat(...) live until the call returns).
// Strings are JSON-escaped (quotes, backslash, control characters; bytes that are not UTF-8 become U+FFFD) and
// cut at kMaxValueBytes; a double that is NaN or infinite is written as null.
class Field {
 public:
  enum class Kind { kString, kInt, kUint, kDouble, kBool };

  Field(std::string_view key, std::string_view value) : key_(key), kind_(Kind::kString), str_(value) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
#ifndef ABSL_USES_STD_STRING_VIEW
  // Debian's Abseil has its own string_view (absl::Status::message() returns one).
  Field(std::string_view key, absl::string_view value) : Field(key, std::string_view(value.data(), value.size())) {}
#endif
  Field(std::string_view key, bool value) : key_(key), kind_(Kind::kBool), bool_(value) {}
  Field(std::string_view key, double value) : key_(key), kind_(Kind::kDouble), double_(value) {}
  template <std::signed_integral T>
  Field(std::string_view key, T value) : key_(key), kind_(Kind::kInt), int_(value) {}
  template <std::unsigned_integral T>
  requires(!std::same_as<T, bool>) Field(std::string_view key, T value) : key_(key), kind_(Kind::kUint), uint_(value) {}

  std::string_view key() const { return key_; }
  // Appends `"key":value` to `out`.
  void AppendTo(std::string* out) const;

 private:
  std::string_view key_;
  Kind kind_;
  union {
    std::string_view str_;
    int64_t int_;
    uint64_t uint_;
    double double_;
    bool bool_;
  };
};

// String values longer than this are cut (at a character boundary) and end with "...": a line stays readable and
// well under a pipe's atomic write size whatever a hostile peer put into a message.
inline constexpr size_t kMaxValueBytes = 2048;

// Sets the level and where lines go: `out` = nullptr is stderr; tests pass a stream (it must outlive every later
// line, i.e. until the next Init). Also routes gRPC's own log (gpr_log) through this logger as event "grpc"
// (fields file, line, message): gRPC still drops what is below GRPC_VERBOSITY (gRPC's variable, default ERROR),
// and this logger what is below `level`. May be called again (tests); until the first call lines go to stderr at
// kInfo, and gRPC logs the way it does by default.
void Init(Level level, std::ostream* out = nullptr);
void SetLevel(Level level);

namespace internal {
extern std::atomic<int> min_level;
}  // namespace internal

inline bool Enabled(Level level) {
  return static_cast<int>(level) >= internal::min_level.load(std::memory_order_relaxed);
}

// Writes one line if `level` is enabled.
void Write(Level level, std::string_view event, std::initializer_list<Field> fields);
// The same, for fields assembled at run time.
void WriteFields(Level level, std::string_view event, std::span<const Field> fields);

inline void Debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, event, fields);
}
inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kError)) Write(Level::kError, event, fields);
}

// Appends `s` to `out` as a JSON string literal (with the quotes), escaped as described at Field.
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace accelsel::log

#endif  // ACCELSEL_UTIL_LOG_H_
