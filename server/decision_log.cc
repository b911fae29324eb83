// DecisionLog: the queue, the writer thread, the join, retention and the live-quality figures.
#include "server/decision_log.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "model/types.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "proto/convert.h"
#include "util/log.h"

namespace accelsel::server {
namespace {

constexpr char kIdPrefix[] = "d1-";
constexpr size_t kPrefixLen = 3;
constexpr size_t kTimeDigits = 12;
constexpr size_t kRandomDigits = 16;
constexpr size_t kIdLen = kPrefixLen + kTimeDigits + 1 + kRandomDigits;
// Per-version series are kept for this many versions (the newest); older ones are removed from /metrics.
constexpr size_t kVersionsShown = 4;
// When the bytes bound is passed, the oldest records are deleted until the log is this share of it, so that
// retention runs in steps rather than on every write.
constexpr double kBytesLowWater = 0.9;
// A decision-log drop is reported in a log line at most this often.
constexpr int64_t kDropLogIntervalMs = 10000;

bool IsHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool Minimised(v1::Objective o) { return !model::IsMaximized(FromProto(o)); }

// What one joined decision says about the model that answered it.
struct JoinFigures {
  bool failed = false;
  double failure_probability = 0;  // estimated for the strategy that ran
  bool scored = false;             // OK run with a measured value and an estimate of it
  double ape = 0;                  // |measured - estimate| / measured
  bool hit = false;                // measured inside the logged 80 % interval
  bool has_regret = false;
  double regret = 0;  // ln(measured / best estimate of another candidate), at least 0 (followed runs only)
};

// A decision's candidate as Figures reads it, from a stored record or from an event in memory.
struct CandidateView {
  std::string_view id;
  double expected = 0, low = 0, high = 0, failure_probability = 0;
  v1::EvidenceLayer layer = v1::EVIDENCE_LAYER_UNKNOWN;
};

bool HasEstimate(const CandidateView& c) {
  return c.layer != v1::EVIDENCE_LAYER_UNKNOWN && c.layer != v1::EVIDENCE_LAYER_UNSPECIFIED &&
         std::isfinite(c.expected) && c.expected > 0;
}

std::vector<CandidateView> Views(const v1::LoggedDecision& d) {
  std::vector<CandidateView> out;
  out.reserve(d.candidates_size());
  for (const v1::LoggedCandidate& c : d.candidates()) {
    out.push_back({c.strategy_id(), c.expected_value(), c.interval_low(), c.interval_high(), c.failure_probability(),
                   c.evidence_layer()});
  }
  return out;
}

JoinFigures Figures(v1::Objective objective, const std::vector<CandidateView>& candidates, const v1::LoggedOutcome& o) {
  JoinFigures f;
  f.failed = o.status() != v1::RUN_STATUS_OK;
  const CandidateView* ran = o.candidate_index() >= 0 && static_cast<size_t>(o.candidate_index()) < candidates.size()
                                 ? &candidates[o.candidate_index()]
                                 : nullptr;
  if (ran != nullptr) f.failure_probability = ran->failure_probability;
  if (f.failed || !o.has_measured_value() || ran == nullptr || !HasEstimate(*ran)) return f;
  const double measured = o.measured_value();
  f.scored = true;
  f.ape = std::abs(measured - ran->expected) / measured;
  f.hit = measured >= ran->low && measured <= ran->high;
  if (o.followed()) {
    const bool minimised = Minimised(objective);
    double best = std::nan("");
    for (size_t i = 1; i < candidates.size(); ++i) {
      const CandidateView& c = candidates[i];
      if (!HasEstimate(c)) continue;
      if (std::isnan(best) || (minimised ? c.expected < best : c.expected > best)) best = c.expected;
    }
    if (!std::isnan(best)) {
      f.has_regret = true;
      f.regret = std::max(0.0, minimised ? std::log(measured / best) : std::log(best / measured));
    }
  }
  return f;
}

JoinFigures Figures(const v1::LoggedDecision& d) { return Figures(d.objective(), Views(d), d.outcome()); }

using google::protobuf::internal::WireFormatLite;

// One field of a serialized message: varint and fixed values in `value`, length-delimited ones as a view in `bytes`.
struct WireField {
  int number = 0;
  WireFormatLite::WireType type = WireFormatLite::WIRETYPE_VARINT;
  uint64_t value = 0;
  std::string_view bytes;
};

// Calls `fn` for each field of the serialized message `msg` until it returns false; false if it did, or if `msg` is
// not well formed. Reads without allocating: what a join needs of a stored decision is a few fields.
template <typename Fn>
bool ForEachField(std::string_view msg, Fn&& fn) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(msg.data()), static_cast<int>(msg.size()));
  for (uint32_t tag; (tag = in.ReadTag()) != 0;) {
    WireField f;
    f.number = WireFormatLite::GetTagFieldNumber(tag);
    f.type = WireFormatLite::GetTagWireType(tag);
    bool ok = true;
    switch (f.type) {
      case WireFormatLite::WIRETYPE_VARINT: ok = in.ReadVarint64(&f.value); break;
      case WireFormatLite::WIRETYPE_FIXED64: ok = in.ReadLittleEndian64(&f.value); break;
      case WireFormatLite::WIRETYPE_FIXED32: {
        uint32_t v = 0;
        ok = in.ReadLittleEndian32(&v);
        f.value = v;
        break;
      }
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        uint32_t len = 0;
        ok = in.ReadVarint32(&len);
        const auto at = static_cast<size_t>(in.CurrentPosition());
        ok = ok && len <= msg.size() - at && in.Skip(static_cast<int>(len));
        if (ok) f.bytes = msg.substr(at, len);
        break;
      }
      default: return false;  // groups: never written by this log
    }
    if (!ok || !fn(f)) return false;
  }
  return in.ConsumedEntireMessage();
}

static_assert(std::endian::native == std::endian::little, "the stored floats are read by memcpy");

double AsDouble(uint64_t bits) { return std::bit_cast<double>(bits); }

// What a join reads of a decision, from an event in memory or scanned out of the stored bytes (views into them).
struct JoinView {
  std::string_view node_id;
  std::string_view replica_id;
  uint64_t model_version = 0;
  v1::Objective objective = v1::OBJECTIVE_UNSPECIFIED;
  double price_per_hour = 0;
  std::vector<CandidateView> candidates;
};

// A LoggedCandidate message (a record whose candidates are not in the stored form).
bool ReadCandidate(std::string_view msg, CandidateView* c) {
  return ForEachField(msg, [&](const WireField& f) {
    const bool fixed = f.type == WireFormatLite::WIRETYPE_FIXED64;
    switch (f.number) {
      case 1: c->id = f.bytes; return f.type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
      case 2: c->expected = AsDouble(f.value); return fixed;
      case 3: c->low = AsDouble(f.value); return fixed;
      case 4: c->high = AsDouble(f.value); return fixed;
      case 5: c->failure_probability = AsDouble(f.value); return fixed;
      case 6: c->layer = static_cast<v1::EvidenceLayer>(f.value); return f.type == WireFormatLite::WIRETYPE_VARINT;
      default: return true;
    }
  });
}

// TaskContext.hardware.price_per_hour of a serialized TaskContext.
bool ReadPrice(std::string_view context, double* price) {
  return ForEachField(context, [&](const WireField& f) {
    if (f.number != 2 || f.type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) return true;
    return ForEachField(f.bytes, [&](const WireField& h) {
      if (h.number == 7 && h.type == WireFormatLite::WIRETYPE_FIXED64) *price = AsDouble(h.value);
      return true;
    });
  });
}

// Scans a stored decision (v1::LoggedDecision bytes) for what a join reads; false when the bytes do not parse, or
// hold the candidates in a form this scan does not take (numbers not packed, or in several runs): the caller then
// parses the whole message.
bool ReadJoinView(std::string_view bytes, JoinView* v) {
  std::vector<std::string_view> ids;
  std::string_view numbers, layers;
  bool have_numbers = false, have_layers = false;
  const bool ok = ForEachField(bytes, [&](const WireField& f) {
    const bool len = f.type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    switch (f.number) {
      case 3: v->node_id = f.bytes; return len;
      case 4: v->model_version = f.value; return f.type == WireFormatLite::WIRETYPE_VARINT;
      case 16: v->replica_id = f.bytes; return len;
      case 6: return len && ReadPrice(f.bytes, &v->price_per_hour);
      case 7: v->objective = static_cast<v1::Objective>(f.value); return f.type == WireFormatLite::WIRETYPE_VARINT;
      case 9: {
        CandidateView c;
        if (!len || !ReadCandidate(f.bytes, &c)) return false;
        v->candidates.push_back(c);
        return true;
      }
      case 13: ids.push_back(f.bytes); return len;
      case 14:
        if (!len || have_numbers) return false;
        have_numbers = true;
        numbers = f.bytes;
        return true;
      case 15:
        if (!len || have_layers) return false;
        have_layers = true;
        layers = f.bytes;
        return true;
      default: return true;
    }
  });
  if (!ok || numbers.size() != ids.size() * 4 * sizeof(float)) return false;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(layers.data()),
                                            static_cast<int>(layers.size()));
  v->candidates.reserve(v->candidates.size() + ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t layer = 0;
    if (!in.ReadVarint32(&layer)) return false;
    const auto number = [&](size_t k) {
      float x = 0;  // the wire's little-endian float is the host's (checked at the top of the file)
      std::memcpy(&x, numbers.data() + 16 * i + 4 * k, sizeof x);
      return static_cast<double>(x);
    };
    v->candidates.push_back(
        {ids[i], number(0), number(1), number(2), number(3), static_cast<v1::EvidenceLayer>(layer)});
  }
  return in.CurrentPosition() == static_cast<int>(layers.size());
}

JoinView ViewOf(const v1::LoggedDecision& d) {
  return {d.node_id(), d.replica_id(), d.model_version(), d.objective(), d.context().hardware().price_per_hour(),
          Views(d)};
}

// The creation time of a record's key (a decision id, or an outcome key that starts with one); 0 if malformed.
int64_t KeyTime(std::string_view key) { return DecisionIdTime(key.substr(0, kIdLen)).value_or(0); }

bool IsOutcomeKey(std::string_view key) { return key.size() == kIdLen + 2 && key.substr(kIdLen) == "/o"; }

// Sums behind one LiveQuality message.
struct Tally {
  uint64_t decisions = 0, joined = 0, scored = 0, hits = 0, followed = 0, explored = 0, failures = 0, regrets = 0;
  double ape_sum = 0, failure_probability_sum = 0, regret_sum = 0;

  void AddDecision(const v1::LoggedDecision& d) {
    ++decisions;
    if (d.explored()) ++explored;
  }
  void AddJoin(const v1::LoggedDecision& d, const JoinFigures& f) {
    ++joined;
    if (d.outcome().followed()) ++followed;
    if (f.failed) ++failures;
    failure_probability_sum += f.failure_probability;
    if (f.scored) {
      ++scored;
      ape_sum += f.ape;
      if (f.hit) ++hits;
    }
    if (f.has_regret) {
      ++regrets;
      regret_sum += f.regret;
    }
  }
  double mape() const { return scored > 0 ? ape_sum / static_cast<double>(scored) : 0; }
  void To(v1::LiveQuality* out) const {
    const auto share = [](uint64_t n, uint64_t of) { return of > 0 ? static_cast<double>(n) / of : 0.0; };
    out->set_decisions(decisions);
    out->set_joined_reports(joined);
    out->set_scored_reports(scored);
    out->set_regret_reports(regrets);
    out->set_mape(mape());
    out->set_coverage80(share(hits, scored));
    out->set_follow_rate(share(followed, joined));
    out->set_exploration_share(share(explored, decisions));
    out->set_failures_predicted(failure_probability_sum);
    out->set_failures_seen(failures);
    out->set_mean_regret_log(regrets > 0 ? regret_sum / static_cast<double>(regrets) : 0);
  }
};

}  // namespace

bool HasLoggedEstimate(const v1::LoggedCandidate& c) {
  return HasEstimate({c.strategy_id(), c.expected_value(), c.interval_low(), c.interval_high(), c.failure_probability(),
                      c.evidence_layer()});
}

std::string MakeDecisionId(int64_t time_unix_ms, uint64_t random) {
  const uint64_t t = static_cast<uint64_t>(std::max<int64_t>(0, time_unix_ms)) & ((uint64_t{1} << 48) - 1);
  return absl::StrFormat("%s%012x-%016x", kIdPrefix, t, random);
}

std::optional<int64_t> DecisionIdTime(std::string_view id) {
  if (id.size() != kIdLen || id.substr(0, kPrefixLen) != kIdPrefix || id[kPrefixLen + kTimeDigits] != '-') {
    return std::nullopt;
  }
  const std::string_view time = id.substr(kPrefixLen, kTimeDigits);
  if (!IsHex(time) || !IsHex(id.substr(kPrefixLen + kTimeDigits + 1))) return std::nullopt;
  uint64_t ms = 0;
  if (!absl::SimpleHexAtoi(absl::string_view(time.data(), time.size()), &ms)) return std::nullopt;
  return static_cast<int64_t>(ms);
}

std::string DecisionKeyAt(int64_t time_unix_ms) {
  const uint64_t t = static_cast<uint64_t>(std::max<int64_t>(0, time_unix_ms));
  if (t >= (uint64_t{1} << 48)) return absl::StrCat(kIdPrefix, "g");  // after every key
  return absl::StrFormat("%s%012x", kIdPrefix, t);
}

std::optional<double> MeasuredObjective(const v1::RunMetrics& m, v1::Objective objective, double price_per_hour) {
  std::optional<double> v;
  switch (objective) {
    case v1::OBJECTIVE_TTFT:
      if (m.has_ttft_ms()) v = m.ttft_ms();
      break;
    case v1::OBJECTIVE_TPOT:
      if (m.has_tpot_ms()) v = m.tpot_ms();
      break;
    case v1::OBJECTIVE_THROUGHPUT:
      if (m.has_throughput_tokens_per_s()) v = m.throughput_tokens_per_s();
      break;
    case v1::OBJECTIVE_COST:
      if (m.has_e2e_latency_ms() && price_per_hour > 0) v = m.e2e_latency_ms() / 3.6e6 * price_per_hour;
      break;
    default:
      if (m.has_e2e_latency_ms()) v = m.e2e_latency_ms();
      break;
  }
  if (v.has_value() && !(std::isfinite(*v) && *v > 0)) v.reset();
  return v;
}

std::string OutcomeKey(std::string_view id) { return std::string(id).append("/o"); }

std::string EncodeDecision(const DecisionRecord& r) {
  using google::protobuf::io::CodedOutputStream;
  size_t ids = 0;
  for (const model::Recommendation& c : r.candidates) ids += c.strategy->id.size();
  const size_t context =
      r.context != nullptr ? r.context->ByteSizeLong() : 0;  // also caches the size WriteMessage uses
  const size_t constraints = r.constraints != nullptr ? r.constraints->ByteSizeLong() : 0;
  std::string out;
  out.reserve(96 + r.decision_id.size() + r.node_id.size() + context + constraints + ids + r.candidates.size() * 20);
  {
    google::protobuf::io::StringOutputStream stream(&out);
    CodedOutputStream o(&stream);
    // Field numbers of v1::LoggedDecision (proto/accelsel/v1/decision_log.proto), the id first (DecisionEvent finds
    // it there); decision_log_test parses the bytes back into the message, field by field.
    const auto write_string = [&o](int field, std::string_view value) {
      WireFormatLite::WriteTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &o);
      o.WriteVarint32(static_cast<uint32_t>(value.size()));
      o.WriteRaw(value.data(), static_cast<int>(value.size()));
    };
    write_string(1, r.decision_id);
    WireFormatLite::WriteInt64(2, r.time_unix_ms, &o);
    if (!r.node_id.empty()) write_string(3, r.node_id);
    WireFormatLite::WriteUInt64(4, r.model_version, &o);
    WireFormatLite::WriteFixed64(5, r.context_key, &o);
    if (r.context != nullptr) WireFormatLite::WriteMessage(6, *r.context, &o);
    WireFormatLite::WriteEnum(7, r.objective, &o);
    if (r.constraints != nullptr) WireFormatLite::WriteMessage(8, *r.constraints, &o);
    // The candidates in their stored form (fields 13-15): the ids, then the numbers as one packed run of floats
    // and the layers as one packed run of varints; about half the bytes of LoggedCandidate messages, and every
    // byte here is also copied into the memtable, the WAL, a flush and a compaction.
    for (const model::Recommendation& c : r.candidates) write_string(13, c.strategy->id);
    if (!r.candidates.empty()) {
      WireFormatLite::WriteTag(14, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &o);
      o.WriteVarint32(static_cast<uint32_t>(r.candidates.size() * 4 * sizeof(float)));
      for (const model::Recommendation& c : r.candidates) {
        for (double v : {c.expected_value, c.interval_low, c.interval_high, c.failure_probability}) {
          o.WriteLittleEndian32(std::bit_cast<uint32_t>(static_cast<float>(v)));
        }
      }
      size_t layers = 0;
      for (const model::Recommendation& c : r.candidates) {
        layers += CodedOutputStream::VarintSize32(static_cast<uint32_t>(ToProto(c.layer)));
      }
      WireFormatLite::WriteTag(15, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &o);
      o.WriteVarint32(static_cast<uint32_t>(layers));
      for (const model::Recommendation& c : r.candidates) o.WriteVarint32(static_cast<uint32_t>(ToProto(c.layer)));
      WireFormatLite::WriteDouble(10, r.candidates.front().selection_probability, &o);
      WireFormatLite::WriteBool(11, r.candidates.front().explored, &o);
    }
    if (!r.replica_id.empty()) write_string(16, r.replica_id);
  }
  return out;
}

DecisionEvent::DecisionEvent(const DecisionRecord& r)
    : bytes(EncodeDecision(r)),
      node_id(r.node_id),
      time_unix_ms(r.time_unix_ms),
      model_version(r.model_version),
      explored(!r.candidates.empty() && r.candidates.front().explored) {
  // Field 1 comes first: its tag (one byte), its length, then the id.
  const size_t at =
      1 + google::protobuf::io::CodedOutputStream::VarintSize32(static_cast<uint32_t>(r.decision_id.size()));
  decision_id = std::string_view(bytes).substr(at, r.decision_id.size());
  replica_id.assign(r.replica_id);
}

std::unique_ptr<DecisionEvent> DecisionEvent::FromBytes(std::string bytes) {
  std::unique_ptr<DecisionEvent> e(new DecisionEvent());
  e->bytes = std::move(bytes);
  const bool ok = ForEachField(e->bytes, [&](const WireField& f) {
    const bool len = f.type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    const bool varint = f.type == WireFormatLite::WIRETYPE_VARINT;
    switch (f.number) {
      case 1: e->decision_id = f.bytes; return len;
      case 2: e->time_unix_ms = static_cast<int64_t>(f.value); return varint;
      case 3: e->node_id.assign(f.bytes); return len;
      case 4: e->model_version = f.value; return varint;
      case 11: e->explored = f.value != 0; return varint;
      case 16: e->replica_id.assign(f.bytes); return len;
      default: return true;
    }
  });
  if (!ok || !DecisionIdTime(e->decision_id).has_value()) return nullptr;
  return e;
}

bool ExpandStoredCandidates(v1::LoggedDecision* d) {
  const int n = d->candidate_ids_size();
  if (n == 0) return d->candidate_numbers_size() == 0 && d->candidate_layers_size() == 0;
  if (d->candidate_numbers_size() != 4 * n || d->candidate_layers_size() != n) return false;
  d->mutable_candidates()->Reserve(d->candidates_size() + n);
  for (int i = 0; i < n; ++i) {
    v1::LoggedCandidate* c = d->add_candidates();
    c->set_strategy_id(std::move(*d->mutable_candidate_ids(i)));
    c->set_expected_value(d->candidate_numbers(4 * i));
    c->set_interval_low(d->candidate_numbers(4 * i + 1));
    c->set_interval_high(d->candidate_numbers(4 * i + 2));
    c->set_failure_probability(d->candidate_numbers(4 * i + 3));
    c->set_evidence_layer(d->candidate_layers(i));
  }
  d->clear_candidate_ids();
  d->clear_candidate_numbers();
  d->clear_candidate_layers();
  return true;
}

absl::Status ScanLoggedDecisions(storage::TelemetryStore* store, int64_t from_ms, int64_t to_ms,
                                 const std::function<bool(const v1::LoggedDecision&)>& fn) {
  v1::LoggedDecision d;
  // Newest first: an outcome's key ("<id>/o") sorts just after its decision's, so it comes just before it.
  std::string outcome_of;
  v1::LoggedOutcome outcome;
  return store->ScanDecisions(
      DecisionKeyAt(from_ms), DecisionKeyAt(to_ms), /*reverse=*/true,
      [&](std::string_view key, std::string_view value) {
        if (IsOutcomeKey(key)) {
          outcome.Clear();
          outcome_of.clear();
          if (outcome.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
            outcome_of.assign(key.substr(0, kIdLen));
          }
          return true;
        }
        d.Clear();
        if (!d.ParseFromArray(value.data(), static_cast<int>(value.size())) || !ExpandStoredCandidates(&d)) {
          return true;
        }
        if (!outcome_of.empty() && outcome_of == key) *d.mutable_outcome() = outcome;
        outcome_of.clear();
        return fn(d);
      });
}

// ---------------------------------------------------------------------------------------------------------------
// Live: the per-version series and the drift window. Writer thread only.
// ---------------------------------------------------------------------------------------------------------------

class DecisionLog::Live {
 public:
  Live(prometheus::Registry& registry, const DecisionLogOptions& options, const Hooks& hooks)
      : options_(options),
        hooks_(hooks),
        decisions_(prometheus::BuildCounter()
                       .Name("accelsel_live_decisions_total")
                       .Help("SelectAccelerator decisions logged, by serving model version and by whether exploration "
                             "placed the first candidate")
                       .Register(registry)),
        interval_(prometheus::BuildCounter()
                      .Name("accelsel_live_interval_total")
                      .Help("Joined OK runs whose measured value fell inside (hit) or outside (miss) the 80 % "
                            "interval logged for the strategy run, by model version")
                      .Register(registry)),
        followed_(prometheus::BuildCounter()
                      .Name("accelsel_live_followed_total")
                      .Help("Joined runs by whether the node ran the first-placed strategy, by model version")
                      .Register(registry)),
        failures_predicted_(prometheus::BuildCounter()
                                .Name("accelsel_live_failures_predicted_total")
                                .Help("Sum of the estimated failure probabilities of the strategies run (joined "
                                      "runs), by model version")
                                .Register(registry)),
        failures_(prometheus::BuildCounter()
                      .Name("accelsel_live_failures_total")
                      .Help("Joined runs that failed (OOM, timeout, crash, not applicable), by model version")
                      .Register(registry)),
        ape_(prometheus::BuildHistogram()
                 .Name("accelsel_live_ape")
                 .Help("Absolute percentage error of the estimate of the strategy run against its measured value, "
                       "a fraction, over joined OK runs, by model version")
                 .Register(registry)),
        regret_(prometheus::BuildHistogram()
                    .Name("accelsel_live_regret_log")
                    .Help("Estimated regret of followed first places: ln(measured / best estimate of another "
                          "candidate), at least 0, by model version")
                    .Register(registry)),
        holdout_mape_(prometheus::BuildGauge()
                          .Name("accelsel_live_holdout_mape")
                          .Help("Held-out MAPE of the model version when it was trained (compare with "
                                "accelsel_live_ape)")
                          .Register(registry)),
        window_mape_(&prometheus::BuildGauge()
                          .Name("accelsel_live_window_mape")
                          .Help("MAPE of the serving version over its last --drift_window scored runs")
                          .Register(registry)
                          .Add({})),
        drift_ratio_(&prometheus::BuildGauge()
                          .Name("accelsel_live_drift_ratio")
                          .Help("accelsel_live_window_mape divided by the serving version's held-out MAPE")
                          .Register(registry)
                          .Add({})),
        wakeups_(&prometheus::BuildCounter()
                      .Name("accelsel_drift_wakeups_total")
                      .Help("Times the trainer was woken early because live error drifted above held-out error")
                      .Register(registry)
                      .Add({})),
        waiting_(&prometheus::BuildGauge()
                      .Name("accelsel_decision_joins_waiting")
                      .Help("Cluster mode: reports waiting for their decision to arrive on the decision stream")
                      .Register(registry)
                      .Add({})) {}

  void SetWaiting(size_t runs) { waiting_->Set(static_cast<double>(runs)); }

  // The serving version while a batch is processed (read once per batch, not per join).
  void SetServing(uint64_t version) { serving_ = version; }

  // Creates the series of `version`, so that they are scraped (at 0) before its first decision.
  void Touch(uint64_t version) { For(version); }

  void OnDecision(uint64_t version, bool explored) {
    Series& s = For(version);
    (explored ? s.explored : s.exploited)->Increment();
  }

  // `own`: a decision of this replica (the series count only those); every scored join feeds the drift window.
  void OnJoin(uint64_t version, bool followed, const JoinFigures& f, int64_t now_ms, bool own) {
    if (!own) {
      if (f.scored) Drift(version, f.ape, For(version).holdout, now_ms);
      return;
    }
    Series& s = For(version);
    (followed ? s.followed : s.not_followed)->Increment();
    s.failures_predicted->Increment(f.failure_probability);
    if (f.failed) s.failures->Increment();
    if (f.scored) {
      s.ape->Observe(f.ape);
      (f.hit ? s.hit : s.miss)->Increment();
    }
    if (f.has_regret) s.regret->Observe(f.regret);
    if (f.scored) Drift(version, f.ape, s.holdout, now_ms);
  }

 private:
  struct Series {
    prometheus::Counter* explored = nullptr;
    prometheus::Counter* exploited = nullptr;
    prometheus::Counter* hit = nullptr;
    prometheus::Counter* miss = nullptr;
    prometheus::Counter* followed = nullptr;
    prometheus::Counter* not_followed = nullptr;
    prometheus::Counter* failures_predicted = nullptr;
    prometheus::Counter* failures = nullptr;
    prometheus::Histogram* ape = nullptr;
    prometheus::Histogram* regret = nullptr;
    prometheus::Gauge* holdout_gauge = nullptr;
    double holdout = 0;  // held-out MAPE; 0 = unknown
  };

  Series& For(uint64_t version) {
    auto it = series_.find(version);
    if (it != series_.end()) return it->second;
    if (series_.size() >= kVersionsShown && version < series_.begin()->first) {
      // An old version's late report: counted under the oldest version shown would mislead; use a shared sink.
      return Sink();
    }
    if (series_.size() >= kVersionsShown) Remove(series_.begin());
    const std::string v = absl::StrCat(version);
    Series s;
    s.explored = &decisions_.Add({{"version", v}, {"explored", "true"}});
    s.exploited = &decisions_.Add({{"version", v}, {"explored", "false"}});
    s.hit = &interval_.Add({{"version", v}, {"result", "hit"}});
    s.miss = &interval_.Add({{"version", v}, {"result", "miss"}});
    s.followed = &followed_.Add({{"version", v}, {"followed", "true"}});
    s.not_followed = &followed_.Add({{"version", v}, {"followed", "false"}});
    s.failures_predicted = &failures_predicted_.Add({{"version", v}});
    s.failures = &failures_.Add({{"version", v}});
    s.ape = &ape_.Add({{"version", v}}, prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5});
    s.regret = &regret_.Add({{"version", v}}, prometheus::Histogram::BucketBoundaries{0, 0.05, 0.1, 0.2, 0.5, 1, 2});
    if (version != 0 && hooks_.holdout) {
      if (std::optional<v1::ModelEvaluation> e = hooks_.holdout(version); e.has_value()) s.holdout = e->holdout_mape();
    }
    s.holdout_gauge = &holdout_mape_.Add({{"version", v}});
    s.holdout_gauge->Set(s.holdout);
    return series_.emplace(version, s).first->second;
  }

  Series& Sink() {
    if (sink_.explored == nullptr) {
      sink_.explored = &sink_counter_;
      sink_.exploited = &sink_counter_;
      sink_.hit = sink_.miss = sink_.followed = sink_.not_followed = &sink_counter_;
      sink_.failures_predicted = sink_.failures = &sink_counter_;
      sink_histogram_ = std::make_unique<prometheus::Histogram>(prometheus::Histogram::BucketBoundaries{1});
      sink_.ape = sink_.regret = sink_histogram_.get();
    }
    return sink_;
  }

  void Remove(std::map<uint64_t, Series>::iterator it) {
    Series& s = it->second;
    decisions_.Remove(s.explored);
    decisions_.Remove(s.exploited);
    interval_.Remove(s.hit);
    interval_.Remove(s.miss);
    followed_.Remove(s.followed);
    followed_.Remove(s.not_followed);
    failures_predicted_.Remove(s.failures_predicted);
    failures_.Remove(s.failures);
    ape_.Remove(s.ape);
    regret_.Remove(s.regret);
    holdout_mape_.Remove(s.holdout_gauge);
    series_.erase(it);
  }

  void Drift(uint64_t version, double ape, double holdout, int64_t now_ms) {
    if (version == 0 || version != serving_) return;
    if (version != window_version_) {
      window_.clear();
      window_sum_ = 0;
      window_version_ = version;
    }
    window_.push_back(ape);
    window_sum_ += ape;
    if (window_.size() > options_.drift_window) {
      window_sum_ -= window_.front();
      window_.pop_front();
    }
    if (window_.size() < options_.drift_window || options_.drift_window == 0) return;
    const double mape = window_sum_ / static_cast<double>(window_.size());
    window_mape_->Set(mape);
    drift_ratio_->Set(holdout > 0 ? mape / holdout : 0);
    if (options_.drift_factor <= 0 || holdout <= 0 || mape <= options_.drift_factor * holdout) return;
    if (last_wake_ms_ != 0 && now_ms - last_wake_ms_ < absl::ToInt64Milliseconds(options_.drift_cooldown)) return;
    last_wake_ms_ = now_ms;
    wakeups_->Increment();
    // A fresh window before the next verdict: the runs that triggered this one must not trigger it again.
    window_.clear();
    window_sum_ = 0;
    if (hooks_.on_drift) hooks_.on_drift(version, mape, holdout);
  }

  const DecisionLogOptions& options_;
  const Hooks& hooks_;
  prometheus::Family<prometheus::Counter>& decisions_;
  prometheus::Family<prometheus::Counter>& interval_;
  prometheus::Family<prometheus::Counter>& followed_;
  prometheus::Family<prometheus::Counter>& failures_predicted_;
  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Histogram>& ape_;
  prometheus::Family<prometheus::Histogram>& regret_;
  prometheus::Family<prometheus::Gauge>& holdout_mape_;
  prometheus::Gauge* window_mape_;
  prometheus::Gauge* drift_ratio_;
  prometheus::Counter* wakeups_;
  prometheus::Gauge* waiting_;
  std::map<uint64_t, Series> series_;  // the newest kVersionsShown versions seen
  Series sink_;
  prometheus::Counter sink_counter_;
  std::unique_ptr<prometheus::Histogram> sink_histogram_;
  uint64_t serving_ = 0;
  uint64_t window_version_ = 0;
  std::deque<double> window_;
  double window_sum_ = 0;
  int64_t last_wake_ms_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// DecisionLog.
// ---------------------------------------------------------------------------------------------------------------

DecisionLog::DecisionLog(storage::TelemetryStore* store, Metrics* metrics, DecisionLogOptions options, Hooks hooks)
    : store_(store), metrics_(metrics), options_(std::move(options)), hooks_(std::move(hooks)) {
  if (!options_.enabled) return;
  live_ = std::make_unique<Live>(metrics_->registry(), options_, hooks_);
  live_->Touch(hooks_.serving_version ? hooks_.serving_version() : 0);
  // The log's size and oldest record, for retention (one pass over keys and values at start-up).
  (void)store_->ScanDecisions(kIdPrefix, "", /*reverse=*/false, [this](std::string_view key, std::string_view value) {
    if (oldest_ms_ == 0) oldest_ms_ = KeyTime(key);
    bytes_ += key.size() + value.size();
    return true;
  });
  metrics_->decision_log_bytes().Set(static_cast<double>(bytes_));
  writer_ = std::thread([this] { WriterLoop(); });
}

DecisionLog::~DecisionLog() { Stop(); }

int64_t DecisionLog::NowMs() const { return options_.now_ms ? options_.now_ms() : absl::ToUnixMillis(absl::Now()); }

bool DecisionLog::Push(Event event, size_t items, bool wait) {
  absl::MutexLock lock(&mu_);
  if (wait) {
    // A producer that waits (the decision stream's applier, maybe with a backlog) fills at most half the queue, so
    // that this replica's own decisions and joins still find room beside it.
    struct Room {
      DecisionLog* self;
      size_t items;
    } room{this, items};
    mu_.Await(absl::Condition(
        +[](Room* r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return r->self->stopping_ || r->self->queued_items_ == 0 ||
                 r->self->queued_items_ + r->items <= r->self->options_.queue_capacity / 2;
        },
        &room));
  } else if (queued_items_ + items > options_.queue_capacity) {
    return false;
  }
  // Only called when enabled, i.e. with the writer started; after Stop nothing is taken any more.
  if (stopping_) return false;
  queue_.push_back(std::move(event));
  queued_items_ += items;
  ++queued_;
  return true;
}

bool DecisionLog::RecordDecision(std::unique_ptr<DecisionEvent> decision) {
  if (!options_.enabled) return false;
  Event e;
  e.decision = std::move(decision);
  if (Push(std::move(e), 1)) return true;
  dropped_.fetch_add(1, std::memory_order_relaxed);
  metrics_->DecisionLogDropped(/*decision=*/true);
  return false;
}

size_t DecisionLog::RecordOutcomes(const std::vector<const v1::RunReport*>& runs) {
  if (!options_.enabled) return 0;
  auto batch = std::make_unique<Outcomes>();
  for (const v1::RunReport* run : runs) {
    if (run->decision_id().empty()) continue;
    Outcomes::Run& r = batch->runs.emplace_back();
    const auto add = [&](const std::string& s) {
      const auto at = static_cast<uint32_t>(batch->chars.size());
      batch->chars.append(s);
      return at;
    };
    r.decision_id = add(run->decision_id());
    r.run_id = add(run->run_id());
    r.node_id = add(run->node_id());
    r.strategy_id = add(run->strategy_id());
    r.end = static_cast<uint32_t>(batch->chars.size());
    r.time_unix_ms = run->time_unix_ms();
    r.status = run->status();
    r.metrics = run->metrics();
  }
  const size_t n = batch->runs.size();
  if (n == 0) return 0;
  Event e;
  e.outcomes = std::move(batch);
  if (Push(std::move(e), n)) return n;
  dropped_.fetch_add(n, std::memory_order_relaxed);
  metrics_->DecisionLogDropped(/*decision=*/false, static_cast<double>(n));
  return 0;
}

bool DecisionLog::RecordForeignDecisions(std::vector<std::unique_ptr<DecisionEvent>> decisions) {
  if (!options_.enabled) return false;
  if (decisions.empty()) return true;
  const size_t n = decisions.size();
  Event e;
  e.foreign = std::move(decisions);
  return Push(std::move(e), n, /*wait=*/true);
}

void DecisionLog::Flush() {
  absl::MutexLock lock(&mu_);
  struct Progress {
    const uint64_t* processed;
    uint64_t target;
  } progress{&processed_, queued_};
  ++flush_waiters_;
  mu_.Await(absl::Condition(
      +[](Progress* p) { return *p->processed >= p->target; }, &progress));
  --flush_waiters_;
}

void DecisionLog::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

void DecisionLog::WriterLoop() {
  std::deque<Event> events;
  const auto any =
      +[](DecisionLog* self) ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->stopping_ || !self->queue_.empty(); };
  const auto batch = +[](DecisionLog* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return self->stopping_ || self->flush_waiters_ > 0 || self->queue_.size() >= kBatch;
  };
  for (;;) {
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(any, this), absl::Seconds(1));
      // Woken by the first event: let a batch gather rather than being woken again for every request.
      if (!queue_.empty()) mu_.AwaitWithTimeout(absl::Condition(batch, this), kLinger);
      events.swap(queue_);
      queued_items_ = 0;
      stop = stopping_ && events.empty();
    }
    const size_t n = events.size();
    if (n > 0 && options_.on_take) options_.on_take();
    Process(events);
    events.clear();
    ExpireWaiting(NowMs(), /*all=*/stop);
    Write();
    if (!logged_.empty()) {
      hooks_.on_logged(std::move(logged_));
      logged_.clear();
    }
    ApplyRetention();
    {
      absl::MutexLock lock(&mu_);
      processed_ += n;
    }
    if (stop) return;
  }
}

// What a join reads of its decision. For a stored one, `view` points into `stored` (or, for a record the scan does
// not take, into `parsed`).
struct DecisionLog::Joinable {
  DecisionEvent* recent = nullptr;
  std::string stored;
  std::unique_ptr<v1::LoggedDecision> parsed;
  JoinView view;
};

void DecisionLog::Process(std::deque<Event>& events) {
  const int64_t now = NowMs();
  live_->SetServing(hooks_.serving_version ? hooks_.serving_version() : 0);
  const int64_t expired_before = now - absl::ToInt64Milliseconds(options_.max_age);
  for (Event& e : events) {
    if (e.decision != nullptr) {
      live_->OnDecision(e.decision->model_version, e.decision->explored);
      bytes_ += e.decision->decision_id.size() + e.decision->bytes.size();
      if (oldest_ms_ == 0) oldest_ms_ = e.decision->time_unix_ms;
      batch_.emplace_back(e.decision->decision_id, e.decision->bytes);
      if (hooks_.on_logged) logged_.emplace_back(e.decision->decision_id, e.decision->bytes);
      Remember(std::move(e.decision));
      continue;
    }
    for (std::unique_ptr<DecisionEvent>& d : e.foreign) {
      // Delivered again (the stream's applier started over), or past the retention age: nothing to add.
      if (recent_.contains(d->decision_id) || d->time_unix_ms < expired_before) continue;
      bytes_ += d->decision_id.size() + d->bytes.size();
      if (oldest_ms_ == 0 || d->time_unix_ms < oldest_ms_) oldest_ms_ = d->time_unix_ms;
      batch_.emplace_back(d->decision_id, d->bytes);
      std::string id(d->decision_id);
      Remember(std::move(d));
      JoinWaiting(id, now);
    }
    if (e.outcomes == nullptr) continue;
    // Decisions remembered since the last write may have pushed others of this batch out of memory before they
    // reached the store, where a join would look for them: write first.
    if (remembered_unwritten_ > options_.recent_capacity / 2) Write();
    const Outcomes& batch = *e.outcomes;
    for (const Outcomes::Run& r : batch.runs) {
      JoinRun({.decision_id = batch.View(r.decision_id, r.run_id),
               .run_id = batch.View(r.run_id, r.node_id),
               .node_id = batch.View(r.node_id, r.strategy_id),
               .strategy_id = batch.View(r.strategy_id, r.end),
               .time_unix_ms = r.time_unix_ms,
               .status = r.status,
               .metrics = &r.metrics},
              now, /*may_wait=*/options_.join_wait > absl::ZeroDuration());
    }
  }
  // Drops are counted per event in the metrics; an operator also gets a summary line at most every 10 s.
  const uint64_t dropped = dropped_.load(std::memory_order_relaxed);
  if (dropped > dropped_logged_ && now - last_drop_log_ms_ >= kDropLogIntervalMs) {
    log::Warn("decision_log_dropped", {{"dropped", dropped - dropped_logged_},
                                       {"dropped_total", dropped},
                                       {"queue_capacity", static_cast<uint64_t>(options_.queue_capacity)}});
    dropped_logged_ = dropped;
    last_drop_log_ms_ = now;
  }
}

void DecisionLog::JoinRun(const RunFields& r, int64_t now_ms, bool may_wait) {
  Joinable d;
  const JoinResult result = Resolve(r.decision_id, r.node_id, now_ms, &d);
  // Another replica's decision may still be on its way on the decision stream, also one made before the oldest this
  // log holds (which Resolve takes for pruned) but within the retention age (a replica catching up applies both
  // streams at once, each at its own pace).
  const std::optional<int64_t> made = DecisionIdTime(r.decision_id);
  if (may_wait && (result == JoinResult::kUnknown || result == JoinResult::kExpired) && made.has_value() &&
      *made >= now_ms - absl::ToInt64Milliseconds(options_.max_age) && *made > pruned_until_ms_ &&
      waiting_runs_ < options_.queue_capacity) {
    auto [it, inserted] = waiting_.try_emplace(std::string(r.decision_id));
    if (inserted) {
      // An id's deadline stays queued after its runs joined; drop those once they outnumber the waiting ids.
      if (waiting_deadlines_.size() > 2 * waiting_.size() + 1024) {
        std::erase_if(waiting_deadlines_, [&](const auto& d) { return !waiting_.contains(d.second); });
      }
      waiting_deadlines_.emplace_back(now_ms + absl::ToInt64Milliseconds(options_.join_wait), it->first);
    }
    it->second.push_back(Waiting{std::string(r.run_id), std::string(r.node_id), std::string(r.strategy_id),
                                 r.time_unix_ms, r.status, *r.metrics, result});
    ++waiting_runs_;
    return;
  }
  Count(result);
  if (result != JoinResult::kJoined) return;
  v1::LoggedOutcome o;
  o.set_run_id(r.run_id.data(), r.run_id.size());
  o.set_node_id(r.node_id.data(), r.node_id.size());
  o.set_time_unix_ms(r.time_unix_ms);
  o.set_strategy_id(r.strategy_id.data(), r.strategy_id.size());
  o.set_status(r.status);
  Join(r.decision_id, std::move(o), *r.metrics, d, now_ms);
}

void DecisionLog::JoinWaiting(const std::string& decision_id, int64_t now_ms) {
  auto it = waiting_.find(decision_id);
  if (it == waiting_.end()) return;
  std::vector<Waiting> runs = std::move(it->second);
  waiting_.erase(it);  // its deadline entry stays, and finds nothing when it comes due
  waiting_runs_ -= runs.size();
  for (const Waiting& w : runs) {
    JoinRun({.decision_id = decision_id,
             .run_id = w.run_id,
             .node_id = w.node_id,
             .strategy_id = w.strategy_id,
             .time_unix_ms = w.time_unix_ms,
             .status = w.status,
             .metrics = &w.metrics},
            now_ms, /*may_wait=*/false);
  }
}

void DecisionLog::ExpireWaiting(int64_t now_ms, bool all) {
  while (!waiting_deadlines_.empty() && (all || waiting_deadlines_.front().first <= now_ms)) {
    if (auto it = waiting_.find(waiting_deadlines_.front().second); it != waiting_.end()) {
      for (const Waiting& w : it->second) Count(w.never);
      waiting_runs_ -= it->second.size();
      waiting_.erase(it);
    }
    waiting_deadlines_.pop_front();
  }
  waiting_count_.store(waiting_runs_, std::memory_order_relaxed);
  live_->SetWaiting(waiting_runs_);
}

JoinResult DecisionLog::Resolve(std::string_view decision_id, std::string_view node_id, int64_t now_ms,
                                Joinable* decision) {
  const std::optional<int64_t> made = DecisionIdTime(decision_id);
  if (!made.has_value()) return JoinResult::kUnknown;
  // Past the retention age whether or not it is deleted yet: what joins must not depend on when retention ran.
  if (*made < now_ms - absl::ToInt64Milliseconds(options_.max_age)) return JoinResult::kExpired;
  bool joined = false;
  if (auto it = recent_.find(decision_id); it != recent_.end()) {
    decision->recent = it->second.get();
    decision->view.node_id = decision->recent->node_id;
    joined = decision->recent->joined;
  } else {
    const std::string id(decision_id);
    absl::StatusOr<std::optional<std::string>> stored = store_->GetDecision(id);
    if (!stored.ok() || !stored->has_value()) {
      // Not kept: beyond the bytes bound the oldest go first, so an id older than the oldest kept one expired.
      return oldest_ms_ != 0 && *made < oldest_ms_ ? JoinResult::kExpired : JoinResult::kUnknown;
    }
    decision->stored = std::move(**stored);
    if (!ReadJoinView(decision->stored, &decision->view)) {
      decision->parsed = std::make_unique<v1::LoggedDecision>();
      if (!decision->parsed->ParseFromString(decision->stored) || !ExpandStoredCandidates(decision->parsed.get())) {
        return JoinResult::kUnknown;
      }
      decision->view = ViewOf(*decision->parsed);
    }
    if (joined_unwritten_.contains(id)) {
      joined = true;
    } else {
      absl::StatusOr<std::optional<std::string>> joined_run = store_->GetDecision(OutcomeKey(decision_id));
      joined = joined_run.ok() && joined_run->has_value();
    }
  }
  if (!decision->view.node_id.empty() && decision->view.node_id != node_id) return JoinResult::kForeign;
  if (joined) return JoinResult::kRepeat;
  return JoinResult::kJoined;
}

void DecisionLog::Join(std::string_view decision_id, v1::LoggedOutcome o, const v1::RunMetrics& metrics, Joinable& d,
                       int64_t now_ms) {
  // A decision in memory is read from its bytes as a stored one is (Resolve read only its node).
  if (d.recent != nullptr && !ReadJoinView(d.recent->bytes, &d.view)) return;
  const JoinView& v = d.view;
  o.set_candidate_index(-1);
  for (size_t i = 0; i < v.candidates.size(); ++i) {
    if (v.candidates[i].id == o.strategy_id()) {
      o.set_candidate_index(static_cast<int32_t>(i));
      break;
    }
  }
  o.set_followed(o.candidate_index() == 0);
  if (o.status() == v1::RUN_STATUS_OK) {
    if (std::optional<double> measured = MeasuredObjective(metrics, v.objective, v.price_per_hour);
        measured.has_value()) {
      o.set_measured_value(*measured);
    }
  }
  const bool own = v.replica_id.empty() || v.replica_id == options_.replica_id;
  live_->OnJoin(v.model_version, o.followed(), Figures(v.objective, v.candidates, o), now_ms, own);
  if (d.recent != nullptr) {
    d.recent->joined = true;
  } else {
    joined_unwritten_.emplace(decision_id);
  }
  // The run is its own small record beside the decision: the decision is never written twice.
  std::string key = OutcomeKey(decision_id);
  std::string value = o.SerializeAsString();
  bytes_ += key.size() + value.size();
  batch_.emplace_back(std::move(key), std::move(value));
}

void DecisionLog::Remember(std::unique_ptr<DecisionEvent> decision) {
  if (options_.recent_capacity == 0) return;
  while (recent_.size() >= options_.recent_capacity && !recent_order_.empty()) {
    recent_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
  const std::string_view id = decision->decision_id;
  ++remembered_unwritten_;
  recent_order_.push_back(id);
  recent_[id] = std::move(decision);
}

void DecisionLog::Write() {
  if (batch_.empty()) return;
  if (absl::Status st = store_->PutDecisions(batch_); !st.ok()) {
    metrics_->DecisionLogWriteFailed(batch_.size());
    log::Error("decision_log_write_failed",
               {{"records", static_cast<uint64_t>(batch_.size())}, {"error", st.ToString()}});
  } else {
    metrics_->decisions_logged().Increment(static_cast<double>(batch_.size()));
  }
  batch_.clear();
  joined_unwritten_.clear();
  remembered_unwritten_ = 0;
  metrics_->decision_log_bytes().Set(static_cast<double>(bytes_));
}

void DecisionLog::ApplyRetention() {
  const int64_t cutoff = NowMs() - absl::ToInt64Milliseconds(options_.max_age);
  const bool too_old = oldest_ms_ != 0 && oldest_ms_ < cutoff;
  const bool too_big = bytes_ > options_.max_bytes;
  if (!too_old && !too_big) return;
  // One pass from the oldest record: everything older than the cutoff goes, and then, while the log is over its
  // bytes bound, the oldest until it is down to the low-water mark.
  const uint64_t target = static_cast<uint64_t>(kBytesLowWater * static_cast<double>(options_.max_bytes));
  uint64_t freed_age = 0, freed_bytes = 0, removed_age = 0, removed_bytes = 0;
  std::string end;  // delete [kIdPrefix, end)
  int64_t next_oldest = 0;
  (void)store_->ScanDecisions(kIdPrefix, "", /*reverse=*/false, [&](std::string_view key, std::string_view value) {
    const int64_t t = KeyTime(key);
    const uint64_t size = key.size() + value.size();
    // The scan stops at the first decision that stays, so an outcome reached here belongs to a decision just
    // deleted (or to none): it goes too, and counts as no record of its own.
    const bool outcome = IsOutcomeKey(key);
    if (t < cutoff) {
      freed_age += size;
      removed_age += outcome ? 0 : 1;
    } else if (outcome || (too_big && bytes_ - freed_age - freed_bytes > target)) {
      freed_bytes += size;
      removed_bytes += outcome ? 0 : 1;
    } else {
      next_oldest = t;
      return false;
    }
    end.assign(key);
    end.push_back('\0');  // just after `key`
    return true;
  });
  if (end.empty()) return;
  if (absl::Status st = store_->DeleteDecisions(kIdPrefix, end); !st.ok()) {
    log::Error("decision_log_prune_failed", {{"error", st.ToString()}});
    return;
  }
  pruned_until_ms_ = std::max(pruned_until_ms_, KeyTime(end));
  // Ids of one millisecond are not in insertion order: look at every remembered one.
  std::erase_if(recent_order_, [&](std::string_view id) {
    if (id >= end) return false;
    recent_.erase(id);  // frees the event `id` views: the last use of it
    return true;
  });
  bytes_ -= std::min(bytes_, freed_age + freed_bytes);
  oldest_ms_ = next_oldest;
  metrics_->DecisionsPruned(removed_age, removed_bytes);
  metrics_->decision_log_bytes().Set(static_cast<double>(bytes_));
}

void DecisionLog::Count(JoinResult result) {
  join_counts_[static_cast<int>(result)].fetch_add(1, std::memory_order_relaxed);
  metrics_->DecisionJoin(static_cast<int>(result));
}

uint64_t DecisionLog::joins(JoinResult result) const {
  return join_counts_[static_cast<int>(result)].load(std::memory_order_relaxed);
}

absl::Status DecisionLog::Quality(absl::Duration window, uint32_t top_nodes, v1::GetLiveQualityResponse* response,
                                  size_t max_records) const {
  response->set_window_ms(absl::ToInt64Milliseconds(window));
  response->set_decision_log_enabled(options_.enabled);
  if (!options_.enabled) return absl::OkStatus();
  const int64_t now = NowMs();
  Tally overall;
  std::map<uint64_t, Tally, std::greater<>> by_version;
  absl::flat_hash_map<std::string, Tally> by_node;
  std::set<std::string> replicas;
  size_t read = 0;
  absl::Status st =
      ScanLoggedDecisions(store_, now - absl::ToInt64Milliseconds(window), now + 1, [&](const v1::LoggedDecision& d) {
        if (read++ >= max_records) {
          response->set_truncated(true);
          return false;
        }
        Tally& v = by_version[d.model_version()];
        if (!d.replica_id().empty() && !replicas.contains(d.replica_id())) replicas.insert(d.replica_id());
        overall.AddDecision(d);
        v.AddDecision(d);
        if (d.has_outcome()) {
          const JoinFigures f = Figures(d);
          overall.AddJoin(d, f);
          v.AddJoin(d, f);
          Tally& n = by_node[d.outcome().node_id()];
          n.AddDecision(d);
          n.AddJoin(d, f);
        }
        return true;
      });
  if (!st.ok()) return st;
  if (!options_.replica_id.empty()) {
    response->set_replicas(static_cast<uint32_t>(replicas.size()));
    for (const std::string& id : replicas) response->add_replica_ids(id);
  }
  overall.To(response->mutable_overall());
  for (const auto& [version, tally] : by_version) {
    v1::VersionLiveQuality* out = response->add_versions();
    out->set_version(version);
    tally.To(out->mutable_live());
    if (version != 0 && hooks_.holdout) {
      if (std::optional<v1::ModelEvaluation> e = hooks_.holdout(version); e.has_value()) *out->mutable_holdout() = *e;
    }
  }
  std::vector<std::pair<std::string, const Tally*>> nodes;
  for (const auto& [node, tally] : by_node) {
    if (tally.scored > 0) nodes.emplace_back(node, &tally);
  }
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.second->mape() != b.second->mape() ? a.second->mape() > b.second->mape() : a.first < b.first;
  });
  for (size_t i = 0; i < nodes.size() && i < top_nodes; ++i) {
    v1::NodeLiveQuality* out = response->add_nodes();
    out->set_node_id(nodes[i].first);
    nodes[i].second->To(out->mutable_live());
  }
  return absl::OkStatus();
}

}  // namespace accelsel::server
