// The stable context keys (see context_key.h). Changing a computation here changes which stored runs share a cell
// and which contexts are held out: keep the values, or say so where the change is released.
#include "model/context_key.h"

#include <bit>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "util/hash.h"

namespace accelsel::model {
namespace {

using util::StableHash;

// The same reports give the same cells, tie-breaks and reservoir choices in every process: a seeded server answers
// a replayed network identically.
uint64_t HashLower(std::string_view s) {
  // Lower-cased on the stack when short (names are): this runs for every run stored (server/training_set.h) and on
  // every select.
  char lower[128];
  if (s.size() > sizeof lower) return StableHash(absl::AsciiStrToLower(std::string(s)));
  for (size_t i = 0; i < s.size(); ++i) lower[i] = absl::ascii_tolower(static_cast<unsigned char>(s[i]));
  return StableHash(std::string_view(lower, s.size()));
}

uint64_t Mix(uint64_t h, uint64_t v) {
  char bytes[sizeof v];
  for (size_t i = 0; i < sizeof v; ++i) bytes[i] = static_cast<char>(v >> (8 * i));
  return StableHash(std::string_view(bytes, sizeof bytes), h);
}

}  // namespace

uint64_t ContextGroupKey(const TaskContext& c) {
  uint64_t h = HashLower(c.model.name);
  h = Mix(h, HashLower(c.model.weight_dtype));
  h = Mix(h, HashLower(c.hardware.accelerator));
  h = Mix(h, c.hardware.count);
  return h;
}

uint64_t ContextKey(const TaskContext& c) {
  uint64_t h = ContextGroupKey(c);
  h = Mix(h, c.workload.prompt_tokens);
  h = Mix(h, c.workload.output_tokens);
  h = Mix(h, c.workload.batch_size);
  // The caller's own task features are part of the task: two jobs that differ only there (a table's extra columns,
  // an embedding) may well prefer different strategies.
  for (const auto& [name, value] : c.extra) {
    h = Mix(h, HashLower(name));
    h = Mix(h, std::bit_cast<uint64_t>(value == 0 ? 0.0 : value));  // -0 and 0 are one value
  }
  for (float v : c.embedding) h = Mix(h, std::bit_cast<uint32_t>(v == 0 ? 0.0f : v));
  return h;
}

uint64_t HoldoutContextKey(const TaskContext& c) {
  // Raw FNV-1a (from StableHash's basis) over the fields, each followed by a 0xff byte (a byte no UTF-8 text holds),
  // exactly as the split was first computed: the held-out contexts of every stored model stay held out.
  constexpr char kSep[] = "\xff";
  std::string fields =
      absl::StrCat(absl::AsciiStrToLower(c.model.name), kSep, absl::AsciiStrToLower(c.model.weight_dtype), kSep,
                   absl::AsciiStrToLower(c.hardware.accelerator), kSep, c.hardware.count, "/", c.workload.prompt_tokens,
                   "/", c.workload.output_tokens, "/", c.workload.batch_size, kSep);
  // A context's own task features split it too: a table whose tasks differ only there (shapes given as extra
  // columns) would otherwise fall into one group per model and accelerator, and with few of those no context is
  // held out and no model is ever promoted. Contexts without them keep the original split.
  for (const auto& [name, value] : c.extra) {
    absl::StrAppend(&fields, absl::AsciiStrToLower(name), "=",
                    absl::Hex(std::bit_cast<uint64_t>(value == 0 ? 0.0 : value)), kSep);
  }
  for (float v : c.embedding) absl::StrAppend(&fields, absl::Hex(std::bit_cast<uint32_t>(v == 0 ? 0.0f : v)), kSep);
  return util::Fnv1a64(fields, util::kStableHashBasis);
}

}  // namespace accelsel::model
