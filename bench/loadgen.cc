// accelsel-loadgen: gRPC load generator for accelsel-server and accelsel-nullserver (callback client API).
//   --rpc select|null  SelectAccelerator, closed loop (--concurrency calls outstanding) or open loop (--rate QPS,
//                      latency from the intended send time so queueing is not hidden). `null` is the same call
//                      against the null server; the name only labels the output.
//   --rpc report       RunReports with fresh run_ids on --concurrency streams; counts DURABLE acks. Backlogged
//                      (each stream writes as fast as the transport takes reports) or, with --rate R, open loop: R
//                      reports/s in all, spread evenly over the streams, each timed from its intended send time to
//                      its durable ack (a stream that falls behind queues its reports; the queueing is measured).
//                      --idle_streams N opens N more streams that send one report each and then nothing until the
//                      load ends; streams are spread over connections (--streams_per_connection); --server_pid
//                      samples the server's VmRSS before, with the idle streams open, and during the load.
//                      --decision_ids N first calls SelectAccelerator N times (outside the timed window) with the
//                      contexts of N reports, then every report carries one of those decision_ids (cycled; each
//                      report still a fresh run_id) and names the decision's first-placed strategy or, for a
//                      share of 1 - --decision_followed, another of its candidates.
//   --rpc prepare      registers --candidates synthetic strategies, streams --prepare_runs runs, retrains.
//   --rpc retrain      one ModelAdmin/Retrain call.
// --retrain_during runs a Retrain concurrently with the select load and stops the load when it returns.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "bench/synthetic.h"
#include "client/client.h"
#include "datasets/llm_inference_bench.h"
#include "grpc/impl/codegen/grpc_types.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "proto/ack_ranges.h"
#include "proto/convert.h"
#include "util/version.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "Server address host:port, replicas host:port,host:port,... (calls spread over them round_robin), or a "
          "gRPC URI such as dns:///name:port");
ABSL_FLAG(std::string, rpc, "select", "select | null | report | prepare | retrain");
ABSL_FLAG(int, concurrency, 64, "Closed loop: calls outstanding (select) or streams (report)");
ABSL_FLAG(double, duration, 10, "Seconds of measured load (after --warmup)");
ABSL_FLAG(double, warmup, 1, "Seconds of load before measuring starts");
ABSL_FLAG(double, rate, 0, "Open loop at this many calls/s (0 = closed loop)");
ABSL_FLAG(int, candidates, 32, "Candidate strategies per SelectAccelerator (synthetic catalogue syn-000...)");
ABSL_FLAG(std::string, contexts, "unique",
          "unique: every request a new context; bundled: LLM-Inference-Bench contexts");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of text");
ABSL_FLAG(uint64_t, prepare_runs, 100000, "--rpc prepare: runs to stream before retraining");
ABSL_FLAG(uint64_t, prepare_contexts, 20000, "--rpc prepare: distinct synthetic contexts in the streamed runs");
ABSL_FLAG(int, report_flush_every, 64,
          "--rpc report: write reports with gRPC's buffer hint and flush every N-th (1 = flush every report). A node "
          "streaming a backlog batches its writes the same way; per-report flushes make the client the bottleneck");
ABSL_FLAG(bool, ack_ranges, true,
          "report: ask for ranged acks (metadata accelsel-ack-ranges: 1), one ack per run of consecutive reports");
ABSL_FLAG(int, idle_streams, 0,
          "--rpc report: extra streams opened before the load; each sends one report, waits for its ack and then "
          "sends nothing until the load ends (a network's many mostly idle nodes)");
ABSL_FLAG(int, streams_per_connection, 100,
          "--rpc report: streams per HTTP/2 connection at most (accelsel-server allows 100 concurrent streams per "
          "connection; gRPC queues the ones beyond it); more streams open more connections, streams round-robin");
ABSL_FLAG(int, max_unacked, 0,
          "--rpc report: reports a stream keeps sent but unacknowledged at most before it pauses (client window). "
          "0 = 65,536 for up to 100 streams (far above any server window: such streams never pause) and 4,096 above");
ABSL_FLAG(int, server_pid, 0,
          "--rpc report: sample this process's VmRSS (/proc/PID/status) before any stream opens, once the idle "
          "streams are open and acknowledged, every 50 ms during the load (max) and at the end of the measured "
          "window; printed as rss_*_kb");
ABSL_FLAG(uint64_t, decision_ids, 0,
          "--rpc report: before the load, call SelectAccelerator this many times (the reports' contexts, the same "
          "candidates and node) and send every report with one of the answers' decision_ids, cycling through them "
          "(each stream its own share: needs >= 2 per stream); 0 = reports without decision_id");
ABSL_FLAG(double, decision_followed, 0.875,
          "--decision_ids: share of the decisions whose reports name the first-placed strategy; the others name "
          "another candidate of the same answer (a join that did not follow the recommendation)");
ABSL_FLAG(int, decision_harvest_in_flight, 64, "--decision_ids: SelectAccelerator calls in flight while harvesting");
ABSL_FLAG(bool, decision_once, false,
          "--decision_ids: send each decision's report once (a decision joined at most once, as a node reports each "
          "run once) and end the load when they are all sent or --duration ends, whichever is first; the reports "
          "sent in the first --warmup seconds are not counted. Default: cycle through them (every report after a "
          "decision's first is a repeat, which the server counts and does not join again)");
ABSL_FLAG(int, server_cpu_pid, 0,
          "--rpc report: the CPU seconds (utime + stime) this process spends from the start of the load (after any "
          "--decision_ids harvest) to its end, printed as server_cpu_load_s");
ABSL_FLAG(bool, retrain_during, false, "select: run a Retrain at the same time; the load stops when it returns");
ABSL_FLAG(std::string, llm_bench_csv, "data/llm-inference-bench/throughput_all_results.csv",
          "LLM-Inference-Bench main table (for --contexts bundled)");
ABSL_FLAG(std::string, descriptors_dir, "data/descriptors", "Descriptor tables for the LLM-Inference-Bench import");

namespace accelsel::bench {
namespace {

using Clock = std::chrono::steady_clock;
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// Log-linear latency histogram in microseconds (< 1% relative error), lock-free recording.
class Histogram {
 public:
  static constexpr int kSub = 128;
  Histogram() : buckets_(kSub * 40) {}
  void Record(int64_t ns) {
    uint64_t us = ns <= 0 ? 0 : static_cast<uint64_t>(ns / 1000);
    buckets_[Index(us)].fetch_add(1, std::memory_order_relaxed);
  }
  double PercentileMs(double p) const {
    uint64_t total = 0;
    for (const auto& b : buckets_) total += b.load();
    if (total == 0) return 0;
    const uint64_t want = static_cast<uint64_t>(std::ceil(p * total));
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i].load();
      if (seen >= want && seen > 0) return Upper(i) / 1000.0;
    }
    return Upper(buckets_.size() - 1) / 1000.0;
  }

 private:
  static size_t Index(uint64_t us) {
    if (us < kSub) return us;
    const int k = 63 - __builtin_clzll(us);  // >= 7
    const size_t idx = kSub + (k - 7) * kSub + ((us >> (k - 7)) - kSub);
    return std::min<size_t>(idx, kSub * 40 - 1);
  }
  static double Upper(size_t i) {
    if (i < kSub) return static_cast<double>(i) + 1;
    const int k = static_cast<int>((i - kSub) / kSub) + 7;
    const uint64_t sub = (i - kSub) % kSub + kSub;
    return static_cast<double>((sub + 1) << (k - 7));
  }
  std::vector<std::atomic<uint64_t>> buckets_;
};

struct Result {
  std::string rpc;
  uint64_t ok = 0, errors = 0, duplicates = 0;
  uint64_t calls = 0;  // every call or report answered, warm-up included (for server CPU per call)
  double seconds = 0;
  double resp_bytes = 0;
  double retrain_s = -1;  // --retrain_during: how long the concurrent Retrain took
  Histogram* hist = nullptr;
  std::string json_extra, text_extra;  // report: stream-count, open-loop and memory figures (empty otherwise)
};

void Print(const Result& r, bool json) {
  const double qps = r.seconds > 0 ? r.ok / r.seconds : 0;
  const double p50 = r.hist->PercentileMs(0.5), p90 = r.hist->PercentileMs(0.9), p99 = r.hist->PercentileMs(0.99),
               p999 = r.hist->PercentileMs(0.999);
  if (json) {
    std::printf(
        "{\"rpc\":\"%s\",\"ok\":%llu,\"errors\":%llu,\"qps\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
        "\"p999_ms\":%.3f,\"seconds\":%.3f,\"duplicates\":%llu,\"resp_bytes\":%.0f,\"retrain_s\":%.3f,"
        "\"calls\":%llu%s}\n",
        r.rpc.c_str(), static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors), qps, p50, p90,
        p99, p999, r.seconds, static_cast<unsigned long long>(r.duplicates), r.resp_bytes, r.retrain_s,
        static_cast<unsigned long long>(r.calls), r.json_extra.c_str());
  } else {
    std::printf("%s: ok %llu errors %llu in %.2f s = %.0f/s; latency ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f\n",
                r.rpc.c_str(), static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors),
                r.seconds, qps, p50, p90, p99, p999);
    if (!r.text_extra.empty()) std::printf("%s\n", r.text_extra.c_str());
  }
  std::fflush(stdout);
}

// Contexts for select requests.
class ContextSource {
 public:
  static ContextSource Unique() {
    ContextSource s;
    for (uint64_t i = 0; i < 64; ++i) {
      s.pool_.emplace_back();
      SyntheticContext(i, &s.pool_.back());
    }
    return s;
  }
  static absl::StatusOr<ContextSource> Bundled(const std::string& csv, const std::string& descriptors) {
    auto runs = datasets::LoadLlmInferenceBench(csv, descriptors, nullptr);
    if (!runs.ok()) return runs.status();
    ContextSource s;
    s.bundled_ = true;
    std::unordered_set<std::string> seen;
    for (const auto& r : *runs) {
      v1::TaskContext c;
      ToProto(r.context, &c);
      if (seen.insert(c.SerializeAsString()).second) s.pool_.push_back(std::move(c));
    }
    return s;
  }
  // Fills `out` with context number `i`.
  void Fill(uint64_t i, v1::TaskContext* out) const {
    if (bundled_) {
      *out = pool_[(i * 2654435761ull) % pool_.size()];
      return;
    }
    *out = pool_[i % pool_.size()];
    auto* w = out->mutable_workload();  // unique shape per i: no exact-context statistics can answer
    w->set_prompt_tokens(64 + static_cast<uint32_t>(i % 4096));
    w->set_output_tokens(16 + static_cast<uint32_t>((i / 4096) % 1024));
    w->set_batch_size(1 + static_cast<uint32_t>((i / (4096ull * 1024)) % 64));
  }
  const std::vector<v1::TaskContext>& pool() const { return pool_; }
  bool bundled() const { return bundled_; }

 private:
  std::vector<v1::TaskContext> pool_;
  bool bundled_ = false;
};

// SelectAccelerator load, closed or open loop.
class SelectLoad {
 public:
  SelectLoad(std::shared_ptr<grpc::Channel> channel, const ContextSource* contexts, int candidates)
      : stub_(v1::AcceleratorSelector::NewStub(channel)), contexts_(contexts) {
    for (int i = 0; i < candidates; ++i) candidate_ids_.push_back(SyntheticStrategyId(i));
  }

  Result Run(int concurrency, double rate, double warmup_s, double duration_s, std::atomic<int64_t>* end_ns) {
    start_ns_ = NowNs();
    measure_ns_ = start_ns_ + static_cast<int64_t>(warmup_s * 1e9);
    end_ns_ = end_ns;
    end_ns_->store(measure_ns_ + static_cast<int64_t>(duration_s * 1e9));
    if (rate <= 0) {
      std::vector<std::unique_ptr<Slot>> slots;
      for (int i = 0; i < concurrency; ++i) slots.push_back(std::make_unique<Slot>());
      outstanding_ = concurrency;
      for (auto& s : slots) Issue(s.get(), NowNs());
      WaitIdle();
    } else {
      OpenLoop(rate);
    }
    Result r;
    r.ok = ok_;
    r.errors = errors_;
    r.calls = calls_;
    r.seconds =
        std::max(1e-9, static_cast<double>(std::min(last_done_ns_.load(), end_ns_->load()) - measure_ns_) / 1e9);
    r.resp_bytes = ok_ > 0 ? static_cast<double>(resp_bytes_) / ok_ : 0;
    r.hist = &hist_;
    return r;
  }

 private:
  struct Slot {
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::SelectAcceleratorRequest req;
    v1::SelectAcceleratorResponse resp;
    int64_t intended_ns = 0;
    bool open_loop = false;
  };

  void Issue(Slot* s, int64_t intended_ns) {
    s->ctx = std::make_unique<grpc::ClientContext>();
    s->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    s->intended_ns = intended_ns;
    if (s->req.candidate_ids_size() == 0) {
      for (const auto& id : candidate_ids_) s->req.add_candidate_ids(id);
      s->req.set_objective(v1::OBJECTIVE_E2E_LATENCY);
      s->req.set_node_id("bench-loadgen");
    }
    contexts_->Fill(next_context_.fetch_add(1, std::memory_order_relaxed), s->req.mutable_context());
    s->resp.Clear();
    stub_->async()->SelectAccelerator(s->ctx.get(), &s->req, &s->resp,
                                      [this, s](grpc::Status status) { Done(s, status); });
  }

  void Done(Slot* s, const grpc::Status& status) {
    const int64_t now = NowNs();
    calls_.fetch_add(1, std::memory_order_relaxed);
    if (s->intended_ns >= measure_ns_ && s->intended_ns < end_ns_->load(std::memory_order_relaxed)) {
      if (status.ok()) {
        ok_.fetch_add(1, std::memory_order_relaxed);
        resp_bytes_.fetch_add(s->resp.ByteSizeLong(), std::memory_order_relaxed);
        hist_.Record(now - s->intended_ns);
      } else {
        if (errors_.fetch_add(1) == 0) std::cerr << "loadgen: first error: " << status.error_message() << "\n";
      }
      int64_t prev = last_done_ns_.load(std::memory_order_relaxed);
      while (prev < now && !last_done_ns_.compare_exchange_weak(prev, now)) {
      }
    }
    if (s->open_loop) {
      std::lock_guard<std::mutex> lock(free_mu_);
      free_.push_back(s);
      if (--outstanding_ == 0) idle_cv_.notify_all();
      return;
    }
    if (now < end_ns_->load(std::memory_order_relaxed)) {
      Issue(s, now);
      return;
    }
    std::lock_guard<std::mutex> lock(free_mu_);
    if (--outstanding_ == 0) idle_cv_.notify_all();
  }

  void OpenLoop(double rate) {
    std::vector<std::unique_ptr<Slot>> all;
    const double interval_ns = 1e9 / rate;
    for (uint64_t i = 0;; ++i) {
      const int64_t intended = start_ns_ + static_cast<int64_t>(i * interval_ns);
      if (intended >= end_ns_->load()) break;
      int64_t now = NowNs();
      if (intended > now) {
        std::this_thread::sleep_for(std::chrono::nanoseconds(intended - now));
      }
      Slot* s = nullptr;
      {
        std::lock_guard<std::mutex> lock(free_mu_);
        if (!free_.empty()) {
          s = free_.back();
          free_.pop_back();
        } else if (all.size() < 50000) {
          all.push_back(std::make_unique<Slot>());
          s = all.back().get();
          s->open_loop = true;
        }
        if (s != nullptr) ++outstanding_;
      }
      if (s == nullptr) {  // 50k calls outstanding: the server is far past saturation
        if (intended >= measure_ns_) errors_.fetch_add(1);
        continue;
      }
      Issue(s, intended);
    }
    WaitIdle();
  }

  void WaitIdle() {
    std::unique_lock<std::mutex> lock(free_mu_);
    idle_cv_.wait(lock, [this] { return outstanding_ == 0; });
  }

  std::unique_ptr<v1::AcceleratorSelector::Stub> stub_;
  const ContextSource* contexts_;
  std::vector<std::string> candidate_ids_;
  int64_t start_ns_ = 0, measure_ns_ = 0;
  std::atomic<int64_t>* end_ns_ = nullptr;
  std::atomic<uint64_t> next_context_{0};
  std::atomic<uint64_t> ok_{0}, errors_{0}, resp_bytes_{0}, calls_{0};
  std::atomic<int64_t> last_done_ns_{0};
  Histogram hist_;
  std::mutex free_mu_;
  std::condition_variable idle_cv_;
  std::vector<Slot*> free_;
  int outstanding_ = 0;
};

// One ReportRun stream. Backlogged (default): writes reports as fast as the server reads them. Open loop
// (`open_loop`): writes the reports Enqueue()d by a pacer, each stamped with its intended send time; a report whose
// time came while the previous write was outstanding waits in the queue and its latency includes the wait.
// Every report is timed from its send (backlogged) or intended send (open loop) time to its ack. The client keeps
// at most `ring` reports unacknowledged (their send times live in a ring of that size): beyond that it pauses until
// acks arrive. The default ring (65,536) is far above any server window, so a stream of the existing cases never
// pauses; many-stream runs use smaller rings, still 8 x the server's default window of 512.
class ReportStream final : public grpc::ClientBidiReactor<v1::RunReport, v1::RunAck> {
 public:
  using Generator = std::function<void(uint64_t seq, v1::RunReport* report)>;
  // Alternative to a Generator: returns the report to write as report `seq`, owned by the caller, which must not
  // change it before the next write's call (the stream keeps one write outstanding).
  using Source = std::function<const v1::RunReport*(uint64_t seq)>;
  static constexpr size_t kDefaultRing = 1 << 16;
  ReportStream(v1::AcceleratorSelector::Stub* stub, Generator gen, uint64_t limit, int64_t measure_ns,
               const std::atomic<int64_t>* end_ns, Histogram* hist, size_t ring = kDefaultRing, bool open_loop = false,
               Source source = nullptr)
      : gen_(std::move(gen)),
        source_(std::move(source)),
        limit_(limit),
        measure_ns_(measure_ns),
        end_ns_(end_ns),
        hist_(hist),
        ring_(ring),
        open_loop_(open_loop),
        sent_ns_(ring) {
    if (absl::GetFlag(FLAGS_ack_ranges)) ctx_.AddMetadata(kAckRangesMetadata, "1");
    stub->async()->ReportRun(&ctx_, this);
    StartRead(&ack_);
    Pump();
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(wmu_);
      writing_ = false;
      if (!ok) broken_ = true;
    }
    if (ok) Pump();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    const int64_t now = NowNs();
    ++ack_msgs_;
    // A ranged ack (--ack_ranges) stands for `count` consecutive reports, each timed from its own send.
    const uint64_t covered = AcksCovered(ack_);
    for (uint64_t seq = ack_.sequence(); seq < ack_.sequence() + covered; ++seq) {
      const int64_t sent = sent_ns_[seq % ring_].load(std::memory_order_relaxed);
      if (sent < measure_ns_ || sent >= end_ns_->load(std::memory_order_relaxed)) continue;
      if (ack_.result() == v1::RunAck::RESULT_DURABLE) {
        ++durable_;
        hist_->Record(now - sent);
        last_ack_ns_ = now;
      } else if (ack_.result() == v1::RunAck::RESULT_DUPLICATE) {
        ++duplicates_;
      } else {
        if (rejected_++ == 0) std::cerr << "loadgen: rejected: " << ack_.reason() << "\n";
      }
    }
    bool resume = false;
    {
      std::lock_guard<std::mutex> lock(wmu_);
      acked_ += covered;
      if (paused_ && seq_ - acked_ < ring_) {
        paused_ = false;
        resume = true;
      }
    }
    StartRead(&ack_);
    if (resume) Pump();
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
    done_ = true;
    cv_.notify_all();
  }
  // Open loop: one report whose intended send time is `intended_ns`.
  void Enqueue(int64_t intended_ns) {
    {
      std::lock_guard<std::mutex> lock(wmu_);
      queue_.push_back(intended_ns);
      if (intended_ns >= measure_ns_ && intended_ns < end_ns_->load(std::memory_order_relaxed)) ++intended_;
    }
    Pump();
  }
  // Open loop: no more reports will be enqueued; the stream half-closes once its queue is sent.
  void PacerDone() {
    {
      std::lock_guard<std::mutex> lock(wmu_);
      pacer_done_ = true;
    }
    Pump();
  }
  grpc::Status Await() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return status_;
  }
  uint64_t durable() const { return durable_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t rejected() const { return rejected_; }
  uint64_t acked() const { return acked_; }
  uint64_t ack_msgs() const { return ack_msgs_; }
  uint64_t intended() const { return intended_; }
  uint64_t sent() {
    std::lock_guard<std::mutex> lock(wmu_);
    return seq_;
  }
  int64_t last_ack_ns() const { return last_ack_ns_; }

 private:
  // Starts the next write, or the half-close, if the stream may. Any thread; no lock held.
  void Pump() {
    const int64_t now = NowNs();
    bool close = false, hint = false;
    uint64_t seq = 0;
    int64_t stamp = now;
    {
      std::lock_guard<std::mutex> lock(wmu_);
      if (writing_ || closed_ || broken_) return;
      // With a limit, the stream also ends at the end of the window (callers without a window pass INT64_MAX).
      const bool over =
          limit_ > 0 ? seq_ >= limit_ || now >= end_ns_->load(std::memory_order_relaxed)
                     : (open_loop_ ? pacer_done_ && queue_.empty() : now >= end_ns_->load(std::memory_order_relaxed));
      if (over) {
        closed_ = close = true;
      } else if (seq_ - acked_ >= ring_) {
        paused_ = true;  // OnReadDone resumes
        return;
      } else if (open_loop_) {
        if (queue_.empty()) return;  // the pacer's next Enqueue writes
        stamp = queue_.front();
        queue_.pop_front();
        // Reports already due go out together; the last one of a burst (or every flush_every-th) flushes.
        hint = !queue_.empty() && flush_every_ > 1 && (seq_ + 1) % flush_every_ != 0;
      } else {
        hint = flush_every_ > 1 && (seq_ + 1) % flush_every_ != 0;
      }
      if (!close) {
        writing_ = true;
        seq = seq_++;
        sent_ns_[seq % ring_].store(stamp, std::memory_order_relaxed);
      }
    }
    if (close) {
      StartWritesDone();
      return;
    }
    const v1::RunReport* msg = &report_;  // report_ belongs to the one outstanding write
    if (source_) {
      msg = source_(seq);
    } else {
      gen_(seq, &report_);
    }
    grpc::WriteOptions options;
    if (hint) options.set_buffer_hint();
    StartWrite(msg, options);
  }

  grpc::ClientContext ctx_;
  Generator gen_;
  Source source_;
  const uint64_t limit_;
  const uint64_t flush_every_ = static_cast<uint64_t>(std::max(1, absl::GetFlag(FLAGS_report_flush_every)));
  const int64_t measure_ns_;
  const std::atomic<int64_t>* end_ns_;
  Histogram* hist_;
  const size_t ring_;
  const bool open_loop_;
  std::vector<std::atomic<int64_t>> sent_ns_;
  v1::RunReport report_;
  v1::RunAck ack_;
  // Write side, under wmu_ (acked_ too: the read side advances it and may resume a paused writer).
  std::mutex wmu_;
  uint64_t seq_ = 0, acked_ = 0, intended_ = 0;
  bool writing_ = false, paused_ = false, closed_ = false, broken_ = false, pacer_done_ = false;
  std::deque<int64_t> queue_;
  // Read side only.
  uint64_t durable_ = 0, duplicates_ = 0, rejected_ = 0, ack_msgs_ = 0;
  int64_t last_ack_ns_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

// A mostly idle stream: sends one report when it opens (so the server has certainly set the stream up), waits for
// its ack, then sends nothing until Close().
class IdleStream final : public grpc::ClientBidiReactor<v1::RunReport, v1::RunAck> {
 public:
  IdleStream(v1::AcceleratorSelector::Stub* stub, const v1::RunReport& first) : report_(first) {
    if (absl::GetFlag(FLAGS_ack_ranges)) ctx_.AddMetadata(kAckRangesMetadata, "1");
    stub->async()->ReportRun(&ctx_, this);
    StartRead(&ack_);
    StartWrite(&report_);
    StartCall();
  }
  void OnWriteDone(bool) override {
    std::lock_guard<std::mutex> lock(mu_);
    written_ = true;
    cv_.notify_all();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      acked_ = true;
      durable_ = ack_.result() == v1::RunAck::RESULT_DURABLE;
      cv_.notify_all();
    }
    StartRead(&ack_);
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
    done_ = true;
    cv_.notify_all();
  }
  // True once the first report is acknowledged (or the stream ended), false at the deadline.
  bool WaitAcked(int64_t deadline_ns) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(0, deadline_ns - NowNs())),
                        [this] { return (acked_ && written_) || done_; });
  }
  void Close() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return written_ || done_; });  // one write at a time, WritesDone included
    if (!done_) StartWritesDone();
  }
  grpc::Status Await() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return status_;
  }
  bool durable() const { return durable_; }

 private:
  grpc::ClientContext ctx_;
  v1::RunReport report_;
  v1::RunAck ack_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool written_ = false, acked_ = false, durable_ = false, done_ = false;
  grpc::Status status_;
};

std::string RunPrefix() {
  return absl::StrFormat("lg-%d-%x", getpid(),
                         static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()));
}

// utime + stime of `pid` in seconds (/proc/PID/stat fields 14 and 15; -1 if unreadable).
double CpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));  // from field 3 (state) on
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// VmRSS of `pid` in kB (0 if unreadable).
int64_t RssKb(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return 0;
}

// Samples the server's RSS every 50 ms while alive and keeps the maximum.
class RssSampler {
 public:
  explicit RssSampler(int pid) : pid_(pid) {
    if (pid_ > 0) thread_ = std::thread([this] { Loop(); });
  }
  ~RssSampler() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  int64_t max_kb() const { return max_kb_.load(); }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      const int64_t kb = RssKb(pid_);
      if (kb > max_kb_.load()) max_kb_.store(kb);
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }
  const int pid_;
  std::atomic<int64_t> max_kb_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// The connections for `streams` streams: `channel` itself when they fit on one, else that many new channels, each
// its own HTTP/2 connection (a local subchannel pool and a distinct argument keep gRPC from sharing one).
std::vector<std::shared_ptr<grpc::Channel>> Connections(std::shared_ptr<grpc::Channel> channel, int streams) {
  const int per = std::max(1, absl::GetFlag(FLAGS_streams_per_connection));
  const int n = std::max(1, (streams + per - 1) / per);
  if (n == 1) return {channel};
  std::vector<std::shared_ptr<grpc::Channel>> out;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("accelsel.loadgen.connection", i);
    client::SetReplicaLoadBalancing(&args);
    out.push_back(grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args));
  }
  for (auto& c : out) {
    if (!c->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::cerr << "loadgen: cannot connect to " << absl::GetFlag(FLAGS_server) << "\n";
      return {};
    }
  }
  return out;
}

// Reports answering harvested SelectAccelerator decisions (--decision_ids): report i has the context of select i,
// its decision_id and a run of the strategy the answer placed first (`followed`) or of another of its candidates.
struct DecisionPool {
  std::vector<v1::RunReport> reports;
  uint64_t followed = 0, not_followed = 0;
  double harvest_s = 0;
  bool once = false;  // each report sent once (--decision_once), else cycled
};

// Streams: `limit` reports per stream (0 = until the duration ends); `rate` > 0: open loop at `rate` reports/s in
// all; `idle` mostly idle streams opened before the load and closed after it. With `decisions`, the busy streams
// send those reports instead of `pool`'s: report i goes to stream i mod streams, which cycles through its share
// (written in place: no copy per report, as the pool's own generator copies only every 64th report).
Result RunReports(std::shared_ptr<grpc::Channel> channel, int streams, uint64_t limit, double warmup_s,
                  double duration_s, const std::vector<v1::RunReport>& pool, double rate = 0, int idle = 0,
                  const DecisionPool* decisions = nullptr) {
  const int server_pid = absl::GetFlag(FLAGS_server_pid);
  const int64_t rss_start = server_pid > 0 ? RssKb(server_pid) : 0;
  const auto channels = Connections(channel, streams + idle);
  Result r;
  r.rpc = "report";
  if (channels.empty()) {
    r.errors = 1;
    return r;
  }
  std::vector<std::unique_ptr<v1::AcceleratorSelector::Stub>> stubs;
  for (auto& c : channels) stubs.push_back(v1::AcceleratorSelector::NewStub(c));
  const std::string prefix = RunPrefix();

  // Idle streams first (on the connections after the busy streams' round-robin), acknowledged, then the RSS.
  std::vector<std::unique_ptr<IdleStream>> idlers;
  uint64_t idle_durable = 0;
  int64_t rss_idle = 0;
  if (idle > 0) {
    for (int i = 0; i < idle; ++i) {
      v1::RunReport first = pool[(i * 13) % pool.size()];
      first.set_run_id(absl::StrCat(prefix, "-idle", i));
      idlers.push_back(std::make_unique<IdleStream>(stubs[(streams + i) % stubs.size()].get(), first));
    }
    const int64_t deadline = NowNs() + 30'000'000'000;
    for (auto& s : idlers) {
      if (!s->WaitAcked(deadline)) {
        std::cerr << "loadgen: an idle stream's first report was not acknowledged within 30 s\n";
        ++r.errors;
        break;
      }
      idle_durable += s->durable();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the server's callbacks settle
    if (server_pid > 0) rss_idle = RssKb(server_pid);
  }

  RssSampler sampler(server_pid);
  const int cpu_pid = absl::GetFlag(FLAGS_server_cpu_pid);
  const double cpu_start = cpu_pid > 0 ? CpuSeconds(cpu_pid) : -1;
  Histogram hist;
  const bool open_loop = rate > 0 && limit == 0;
  const int64_t start = NowNs();
  const int64_t measure = limit > 0 ? start : start + static_cast<int64_t>(warmup_s * 1e9);
  std::atomic<int64_t> end{limit > 0 ? INT64_MAX : measure + static_cast<int64_t>(duration_s * 1e9)};
  // Up to 100 streams (every existing case) keep the 65,536-report ring; more streams 4,096 each (8 x the
  // server's default window) so that 1,000 of them do not take 512 MB of send times. --max_unacked sets it.
  const int max_unacked = absl::GetFlag(FLAGS_max_unacked);
  const size_t ring =
      max_unacked > 0 ? static_cast<size_t>(max_unacked) : (streams <= 100 ? ReportStream::kDefaultRing : 4096);
  std::vector<std::vector<v1::RunReport>> shares(decisions != nullptr ? streams : 0);
  if (decisions != nullptr) {
    for (size_t i = 0; i < decisions->reports.size(); ++i) shares[i % streams].push_back(decisions->reports[i]);
  }
  std::vector<std::unique_ptr<ReportStream>> all;
  for (int s = 0; s < streams; ++s) {
    const std::string stream_prefix = absl::StrCat(prefix, "-s", s, "-");
    auto gen = [&pool, stream_prefix, s](uint64_t seq, v1::RunReport* r) {
      if (seq % 64 == 0 || r->run_id().empty()) *r = pool[(seq / 64 + s * 7) % pool.size()];
      r->set_run_id(absl::StrCat(stream_prefix, seq));
    };
    ReportStream::Source source;
    if (decisions != nullptr) {
      // Safe in place: report seq's slot is rewritten at seq + share size (>= 2), after seq's write has completed.
      source = [share = &shares[s], stream_prefix](uint64_t seq) {
        v1::RunReport& r = (*share)[seq % share->size()];
        r.set_run_id(absl::StrCat(stream_prefix, seq));
        return &r;
      };
    }
    const uint64_t stream_limit = decisions != nullptr && decisions->once ? shares[s].size() : limit;
    all.push_back(std::make_unique<ReportStream>(stubs[s % stubs.size()].get(), gen, stream_limit, measure, &end, &hist,
                                                 ring, open_loop, std::move(source)));
  }
  int64_t rss_end = 0;
  if (open_loop) {
    // The k-th report of the run is due at start + k / rate on stream k mod streams: each stream sends at
    // rate / streams, the streams' phases evenly staggered. Reports already due go out without sleeping.
    const double interval_ns = 1e9 / rate;
    const int64_t stop = end.load();
    for (uint64_t k = 0;; ++k) {
      const int64_t intended = start + static_cast<int64_t>(k * interval_ns);
      if (intended >= stop) break;
      const int64_t now = NowNs();
      if (intended > now) std::this_thread::sleep_for(std::chrono::nanoseconds(intended - now));
      all[k % all.size()]->Enqueue(intended);
    }
    if (server_pid > 0) rss_end = RssKb(server_pid);
    for (auto& s : all) s->PacerDone();
  } else if (server_pid > 0 && limit == 0) {
    std::this_thread::sleep_until(Clock::time_point(std::chrono::nanoseconds(end.load() - 1'000'000)));
    rss_end = RssKb(server_pid);
  }
  int64_t last = measure;
  uint64_t ack_msgs = 0, intended = 0;
  for (auto& s : all) {
    grpc::Status st = s->Await();
    if (!st.ok()) {
      std::cerr << "loadgen: stream ended with " << st.error_code() << ": " << st.error_message() << "\n";
      ++r.errors;
    }
    r.ok += s->durable();
    r.calls += s->acked();
    r.duplicates += s->duplicates();
    r.errors += s->rejected();
    ack_msgs += s->ack_msgs();
    intended += s->intended();
    last = std::max(last, s->last_ack_ns());
  }
  sampler.Stop();
  if (cpu_pid > 0) r.json_extra += absl::StrFormat(",\"server_cpu_load_s\":%.3f", CpuSeconds(cpu_pid) - cpu_start);
  for (auto& s : idlers) s->Close();
  for (auto& s : idlers) {
    grpc::Status st = s->Await();
    if (!st.ok()) {
      std::cerr << "loadgen: idle stream ended with " << st.error_code() << ": " << st.error_message() << "\n";
      ++r.errors;
    }
  }
  // Open loop: the acks of reports due in the window may come after it; a server that falls behind stretches the
  // time (achieved rate below the offered one) instead of being cut off at the window's end.
  const int64_t until = limit > 0 ? last : (open_loop ? std::max(last, end.load()) : std::min(last, end.load()));
  r.seconds = std::max(1e-9, static_cast<double>(until - measure) / 1e9);
  r.hist = &hist;
  if (decisions != nullptr) {
    uint64_t sent = 0;
    for (auto& s : all) sent += s->sent();
    r.json_extra += absl::StrFormat(
        ",\"decision_ids\":%zu,\"decisions_followed\":%llu,\"decisions_not_followed\":%llu,\"harvest_s\":%.3f,"
        "\"decision_once\":%s,\"sent\":%llu",
        decisions->reports.size(), static_cast<unsigned long long>(decisions->followed),
        static_cast<unsigned long long>(decisions->not_followed), decisions->harvest_s,
        decisions->once ? "true" : "false", static_cast<unsigned long long>(sent));
    r.text_extra = absl::StrFormat(
        "  every report carries one of %zu decision_ids (%llu name the first-placed strategy, %llu another "
        "candidate), %s; harvested in %.2f s before the load; %llu reports sent",
        decisions->reports.size(), static_cast<unsigned long long>(decisions->followed),
        static_cast<unsigned long long>(decisions->not_followed), decisions->once ? "each once" : "cycled",
        decisions->harvest_s, static_cast<unsigned long long>(sent));
  }
  if (streams > 1 || idle > 0 || open_loop || server_pid > 0 || channels.size() > 1 || max_unacked > 0) {
    size_t wire = 0, mem = 0;
    for (const auto& p : pool) {
      wire += p.ByteSizeLong();
      mem += p.SpaceUsedLong();
    }
    r.json_extra += absl::StrFormat(
        ",\"streams\":%d,\"idle_streams\":%d,\"idle_durable\":%llu,\"connections\":%d,\"rate\":%.1f,"
        "\"intended\":%llu,\"ack_msgs\":%llu,\"max_unacked\":%zu,\"report_wire_bytes\":%.0f,\"report_mem_bytes\":%.0f,"
        "\"rss_start_kb\":%lld,\"rss_idle_kb\":%lld,\"rss_max_kb\":%lld,\"rss_end_kb\":%lld",
        streams, idle, static_cast<unsigned long long>(idle_durable), static_cast<int>(channels.size()), rate,
        static_cast<unsigned long long>(intended), static_cast<unsigned long long>(ack_msgs), ring,
        static_cast<double>(wire) / pool.size(), static_cast<double>(mem) / pool.size(),
        static_cast<long long>(rss_start), static_cast<long long>(rss_idle), static_cast<long long>(sampler.max_kb()),
        static_cast<long long>(rss_end));
    if (!r.text_extra.empty()) r.text_extra += "\n";
    r.text_extra += absl::StrFormat(
        "  %d streams + %d idle on %d connections%s; %llu ack messages; server RSS kB: start %lld, idle streams "
        "open %lld, max %lld, end of window %lld",
        streams, idle, static_cast<int>(channels.size()),
        open_loop ? absl::StrFormat(", open loop at %.0f/s (%llu reports due in the window)", rate,
                                    static_cast<unsigned long long>(intended))
                  : "",
        static_cast<unsigned long long>(ack_msgs), static_cast<long long>(rss_start), static_cast<long long>(rss_idle),
        static_cast<long long>(sampler.max_kb()), static_cast<long long>(rss_end));
  }
  Print(r, absl::GetFlag(FLAGS_json));
  r.hist = nullptr;  // `hist` dies with this frame
  return r;
}

std::vector<v1::RunReport> ReportPool(const ContextSource& contexts, int k, size_t n, uint64_t pool_contexts) {
  std::mt19937_64 rng(42);
  std::vector<v1::RunReport> pool(n);
  for (size_t i = 0; i < n; ++i) {
    v1::TaskContext c;
    if (contexts.bundled() && i % 2 == 0) {
      c = contexts.pool()[rng() % contexts.pool().size()];
    } else {
      PooledContext(rng() % pool_contexts, pool_contexts, &c);
    }
    SyntheticRun(c, static_cast<int>(rng() % k), rng, &pool[i]);
  }
  return pool;
}

// --decision_ids: `n` SelectAccelerator calls (`in_flight` at a time, callback API) with the contexts of `n` pool
// reports, the catalogue's first `k` strategies as candidates and the reports' node_id; each report is then redrawn
// as a run of the answer's first-placed strategy (a share `followed_share` of them, chosen per index) or of another
// of its candidates, and carries the answer's decision_id.
class DecisionHarvest {
 public:
  DecisionHarvest(std::shared_ptr<grpc::Channel> channel, int k, double followed_share, DecisionPool* out)
      : stub_(v1::AcceleratorSelector::NewStub(channel)), followed_share_(followed_share), out_(out) {
    for (int i = 0; i < k; ++i) index_[SyntheticStrategyId(i)] = i;
    for (int i = 0; i < k; ++i) request_.add_candidate_ids(SyntheticStrategyId(i));
    request_.set_objective(v1::OBJECTIVE_E2E_LATENCY);
  }

  absl::Status Run(int in_flight) {
    const int64_t t0 = NowNs();
    const int slots = static_cast<int>(std::min<uint64_t>(std::max(1, in_flight), out_->reports.size()));
    std::vector<std::unique_ptr<Slot>> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      outstanding_ = slots;
    }
    for (int i = 0; i < slots; ++i) all.push_back(std::make_unique<Slot>());
    for (auto& s : all) Issue(s.get());
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return outstanding_ == 0; });
    }
    if (!error_.empty()) return absl::UnavailableError(absl::StrCat("SelectAccelerator while harvesting: ", error_));
    out_->followed = followed_.load();
    out_->not_followed = not_followed_.load();
    out_->harvest_s = (NowNs() - t0) / 1e9;
    return absl::OkStatus();
  }

 private:
  struct Slot {
    uint64_t i = 0;
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::SelectAcceleratorRequest req;
    v1::SelectAcceleratorResponse resp;
  };

  // Starts the next call on `s`; false when every index is taken (or a call failed).
  bool Issue(Slot* s) {
    s->i = next_.fetch_add(1);
    if (s->i >= out_->reports.size() || failed_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (--outstanding_ == 0) cv_.notify_all();
      return false;
    }
    const v1::RunReport& report = out_->reports[s->i];
    s->ctx = std::make_unique<grpc::ClientContext>();
    s->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    s->req = request_;
    s->req.set_node_id(report.node_id());
    *s->req.mutable_context() = report.context();
    s->resp.Clear();
    stub_->async()->SelectAccelerator(s->ctx.get(), &s->req, &s->resp,
                                      [this, s](grpc::Status status) { Done(s, status); });
    return true;
  }

  void Done(Slot* s, const grpc::Status& st) {
    const v1::SelectAcceleratorResponse& resp = s->resp;
    if (!st.ok() || resp.decision_id().empty() || resp.recommendations_size() == 0) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!failed_.exchange(true)) {
        error_ = st.ok() ? "an answer without decision_id or recommendations"
                         : absl::StrCat(static_cast<int>(st.error_code()), ": ", st.error_message());
      }
      if (--outstanding_ == 0) cv_.notify_all();
      return;
    }
    std::mt19937_64 rng(0x9e3779b97f4a7c15ull ^ (s->i * 0xbf58476d1ce4e5b9ull));
    int pick = 0;
    if (resp.recommendations_size() > 1 && std::uniform_real_distribution<double>(0, 1)(rng) >= followed_share_) {
      pick = 1 + static_cast<int>(rng() % (resp.recommendations_size() - 1));
    }
    const std::string& id = resp.recommendations(pick).strategy().id();
    v1::RunReport& report = out_->reports[s->i];
    const v1::TaskContext context = report.context();
    if (auto it = index_.find(id); it != index_.end()) {
      SyntheticRun(context, it->second, rng, &report);  // a run of that strategy in that context
    } else {
      report.set_strategy_id(id);
    }
    report.set_decision_id(resp.decision_id());
    (pick == 0 ? followed_ : not_followed_).fetch_add(1, std::memory_order_relaxed);
    Issue(s);
  }

  std::unique_ptr<v1::AcceleratorSelector::Stub> stub_;
  const double followed_share_;
  DecisionPool* out_;
  std::unordered_map<std::string, int> index_;
  v1::SelectAcceleratorRequest request_;
  std::atomic<uint64_t> next_{0}, followed_{0}, not_followed_{0};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int outstanding_ = 0;
  std::string error_;  // under mu_
};

absl::StatusOr<DecisionPool> HarvestDecisions(std::shared_ptr<grpc::Channel> channel, const ContextSource& contexts,
                                              int k, uint64_t n, double followed_share, int in_flight) {
  DecisionPool d;
  d.reports = ReportPool(contexts, k, n, 5000);
  DecisionHarvest harvest(channel, k, followed_share, &d);
  if (absl::Status st = harvest.Run(in_flight); !st.ok()) return st;
  std::fprintf(stderr, "loadgen: harvested %llu decision_ids in %.2f s (%llu followed, %llu another candidate)\n",
               static_cast<unsigned long long>(n), d.harvest_s, static_cast<unsigned long long>(d.followed),
               static_cast<unsigned long long>(d.not_followed));
  return d;
}

int Retrain(std::shared_ptr<grpc::Channel> channel, bool quiet, double* seconds = nullptr) {
  auto admin = v1::ModelAdmin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(20));
  v1::RetrainRequest req;
  v1::RetrainResponse resp;
  const int64_t t0 = NowNs();
  grpc::Status st = admin->Retrain(&ctx, req, &resp);
  if (!st.ok()) {
    std::cerr << "loadgen: Retrain failed: " << st.error_message() << "\n";
    return 1;
  }
  if (seconds != nullptr) *seconds = (NowNs() - t0) / 1e9;
  if (!quiet) {
    std::printf(
        "{\"rpc\":\"retrain\",\"seconds\":%.3f,\"training_seconds\":%.3f,\"rows\":%llu,\"promoted\":%s,"
        "\"version\":%llu}\n",
        (NowNs() - t0) / 1e9, resp.candidate().training_seconds(),
        static_cast<unsigned long long>(resp.candidate().training_rows()),
        resp.candidate().promoted() ? "true" : "false", static_cast<unsigned long long>(resp.candidate().version()));
  } else {
    std::fprintf(stderr, "loadgen: retrain took %.2f s (%llu rows, promoted %d)\n", (NowNs() - t0) / 1e9,
                 static_cast<unsigned long long>(resp.candidate().training_rows()), resp.candidate().promoted());
  }
  return 0;
}

int Prepare(std::shared_ptr<grpc::Channel> channel, const ContextSource& contexts, int k) {
  auto stub = v1::AcceleratorSelector::NewStub(channel);
  for (const v1::Strategy& s : SyntheticStrategies(k)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = s;
    v1::RegisterStrategyResponse resp;
    grpc::Status st = stub->RegisterStrategy(&ctx, req, &resp);
    if (!st.ok()) {
      std::cerr << "loadgen: RegisterStrategy " << s.id() << ": " << st.error_message() << "\n";
      return 1;
    }
  }
  const uint64_t runs = absl::GetFlag(FLAGS_prepare_runs);
  if (runs > 0) {
    const auto pool = ReportPool(contexts, k, 8192, absl::GetFlag(FLAGS_prepare_contexts));
    std::mt19937_64 rng(7);
    // Every report drawn fresh so the stored runs cover many contexts.
    const std::string prefix = RunPrefix();
    auto stub2 = v1::AcceleratorSelector::NewStub(channel);
    Histogram hist;
    std::atomic<int64_t> end{INT64_MAX};
    const uint64_t pc = absl::GetFlag(FLAGS_prepare_contexts);
    ReportStream stream(
        stub2.get(),
        [&](uint64_t seq, v1::RunReport* r) {
          v1::TaskContext c;
          if (contexts.bundled() && seq % 2 == 0) {
            c = contexts.pool()[rng() % contexts.pool().size()];
          } else {
            PooledContext(rng() % pc, pc, &c);
          }
          r->Clear();
          SyntheticRun(c, static_cast<int>(rng() % k), rng, r);
          r->set_run_id(absl::StrCat(prefix, "-", seq));
        },
        runs, 0, &end, &hist);
    grpc::Status st = stream.Await();
    std::fprintf(stderr, "loadgen: prepared %llu runs (%llu durable, %llu duplicate, %llu rejected)\n",
                 static_cast<unsigned long long>(runs), static_cast<unsigned long long>(stream.durable()),
                 static_cast<unsigned long long>(stream.duplicates()),
                 static_cast<unsigned long long>(stream.rejected()));
    if (!st.ok() || stream.rejected() > 0) {
      std::cerr << "loadgen: prepare stream failed: " << st.error_message() << "\n";
      return 1;
    }
  }
  if (runs == 0) return 0;  // catalogue only
  return Retrain(channel, /*quiet=*/false);
}

int Main() {
  const std::string rpc = absl::GetFlag(FLAGS_rpc);
  const int k = absl::GetFlag(FLAGS_candidates);
  if (k < 1 || k > 256) {
    std::cerr << "loadgen: --candidates must be in [1, 256]\n";
    return 2;
  }
  // Converted once, here: a list's names are resolved once, and every connection gets the same replicas.
  auto target = client::ChannelTarget(absl::GetFlag(FLAGS_server), "--server");
  if (!target.ok()) {
    std::cerr << "loadgen: " << target.status().message() << "\n";
    return 2;
  }
  absl::SetFlag(&FLAGS_server, *target);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  client::SetReplicaLoadBalancing(&args);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::cerr << "loadgen: cannot connect to " << absl::GetFlag(FLAGS_server) << "\n";
    return 1;
  }
  ContextSource contexts = ContextSource::Unique();
  if (absl::GetFlag(FLAGS_contexts) == "bundled") {
    auto b = ContextSource::Bundled(absl::GetFlag(FLAGS_llm_bench_csv), absl::GetFlag(FLAGS_descriptors_dir));
    if (!b.ok()) {
      std::cerr << "loadgen: " << b.status() << "\n";
      return 1;
    }
    contexts = *std::move(b);
  } else if (absl::GetFlag(FLAGS_contexts) != "unique") {
    std::cerr << "loadgen: --contexts must be unique or bundled\n";
    return 2;
  }
  const int concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  const double duration = absl::GetFlag(FLAGS_duration), warmup = absl::GetFlag(FLAGS_warmup);

  if (rpc == "prepare") return Prepare(channel, contexts, k);
  if (rpc == "retrain") return Retrain(channel, false);
  if (rpc == "report") {
    const uint64_t n = absl::GetFlag(FLAGS_decision_ids);
    std::optional<DecisionPool> decisions;
    if (n > 0) {
      if (n < 2 * static_cast<uint64_t>(concurrency)) {
        std::cerr << "loadgen: --decision_ids must be at least 2 per stream (--concurrency)\n";
        return 2;
      }
      const double share = absl::GetFlag(FLAGS_decision_followed);
      if (!(share >= 0 && share <= 1)) {
        std::cerr << "loadgen: --decision_followed must be in [0, 1]\n";
        return 2;
      }
      auto d = HarvestDecisions(channel, contexts, k, n, share, absl::GetFlag(FLAGS_decision_harvest_in_flight));
      if (!d.ok()) {
        std::cerr << "loadgen: " << d.status() << "\n";
        return 1;
      }
      decisions = *std::move(d);
      decisions->once = absl::GetFlag(FLAGS_decision_once);
    }
    const auto pool = ReportPool(contexts, k, 1024, 5000);
    const Result r = RunReports(channel, concurrency, 0, warmup, duration, pool, absl::GetFlag(FLAGS_rate),
                                std::max(0, absl::GetFlag(FLAGS_idle_streams)), decisions ? &*decisions : nullptr);
    if (decisions && decisions->once && r.ok == 0) {
      std::cerr << "loadgen: --decision_once: every report went out in the warm-up; raise --decision_ids\n";
      return 1;
    }
    return r.errors > 0 ? 1 : 0;
  }
  if (rpc != "select" && rpc != "null") {
    std::cerr << "loadgen: --rpc must be select, null, report, prepare or retrain\n";
    return 2;
  }
  SelectLoad load(channel, &contexts, k);
  std::atomic<int64_t> end{0};
  std::thread retrain;
  double retrain_s = -1;
  if (absl::GetFlag(FLAGS_retrain_during)) {
    retrain = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
      Retrain(channel, true, &retrain_s);
      end.store(std::min(end.load(), NowNs()));
    });
  }
  Result r = load.Run(concurrency, absl::GetFlag(FLAGS_rate), warmup, duration, &end);
  if (retrain.joinable()) retrain.join();
  r.retrain_s = retrain_s;
  r.rpc = rpc;
  Print(r, absl::GetFlag(FLAGS_json));
  return r.ok == 0 ? 1 : 0;
}

}  // namespace
}  // namespace accelsel::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "accelsel-loadgen --server ADDR --rpc select|report|null --concurrency N --duration SECONDS [--rate QPS] "
      "[--candidates K] [--contexts unique|bundled] [--idle_streams N] [--server_pid PID] [--decision_ids N] "
      "[--json]");
  accelsel::util::SetFlagsVersion("accelsel-loadgen");
  absl::ParseCommandLine(argc, argv);
  return accelsel::bench::Main();
}
