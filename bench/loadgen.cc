// accelsel-loadgen: gRPC load generator for accelsel-server and accelsel-nullserver (callback client API).
//   --rpc select|null  SelectAccelerator, closed loop (--concurrency calls outstanding) or open loop (--rate QPS,
//                      latency from the intended send time so queueing is not hidden). `null` is the same call
//                      against the null server; the name only labels the output.
//   --rpc report       RunReports with fresh run_ids on --concurrency streams; counts DURABLE acks.
//   --rpc prepare      registers --candidates synthetic strategies, streams --prepare_runs runs, retrains.
//   --rpc retrain      one ModelAdmin/Retrain call.
// --retrain_during runs a Retrain concurrently with the select load and stops the load when it returns.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "accelsel/v1/accelsel.grpc.pb.h"
#include "bench/synthetic.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "datasets/llm_inference_bench.h"
#include "proto/ack_ranges.h"
#include "proto/convert.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address host:port");
ABSL_FLAG(std::string, rpc, "select", "select | null | report | prepare | retrain");
ABSL_FLAG(int, concurrency, 64, "Closed loop: calls outstanding (select) or streams (report)");
ABSL_FLAG(double, duration, 10, "Seconds of measured load (after --warmup)");
ABSL_FLAG(double, warmup, 1, "Seconds of load before measuring starts");
ABSL_FLAG(double, rate, 0, "Open loop at this many calls/s (0 = closed loop)");
ABSL_FLAG(int, candidates, 32, "Candidate strategies per SelectAccelerator (synthetic catalogue syn-000...)");
ABSL_FLAG(std::string, contexts, "unique", "unique: every request a new context; bundled: LLM-Inference-Bench contexts");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of text");
ABSL_FLAG(uint64_t, prepare_runs, 100000, "--rpc prepare: runs to stream before retraining");
ABSL_FLAG(uint64_t, prepare_contexts, 20000, "--rpc prepare: distinct synthetic contexts in the streamed runs");
ABSL_FLAG(int, report_flush_every, 64,
          "--rpc report: write reports with gRPC's buffer hint and flush every N-th (1 = flush every report). A node "
          "streaming a backlog batches its writes the same way; per-report flushes make the client the bottleneck");
ABSL_FLAG(bool, ack_ranges, true,
          "report: ask for ranged acks (metadata accelsel-ack-ranges: 1), one ack per run of consecutive reports");
ABSL_FLAG(bool, retrain_during, false, "select: run a Retrain at the same time; the load stops when it returns");
ABSL_FLAG(std::string, llm_bench_csv, "data/llm-inference-bench/throughput_all_results.csv",
          "LLM-Inference-Bench main table (for --contexts bundled)");
ABSL_FLAG(std::string, descriptors_dir, "data/descriptors", "Descriptor tables for the LLM-Inference-Bench import");

namespace accelsel::bench {
namespace {

using Clock = std::chrono::steady_clock;
int64_t NowNs() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

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
};

void Print(const Result& r, bool json) {
  const double qps = r.seconds > 0 ? r.ok / r.seconds : 0;
  const double p50 = r.hist->PercentileMs(0.5), p90 = r.hist->PercentileMs(0.9), p99 = r.hist->PercentileMs(0.99),
               p999 = r.hist->PercentileMs(0.999);
  if (json) {
    std::printf(
        "{\"rpc\":\"%s\",\"ok\":%llu,\"errors\":%llu,\"qps\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
        "\"p999_ms\":%.3f,\"seconds\":%.3f,\"duplicates\":%llu,\"resp_bytes\":%.0f,\"retrain_s\":%.3f,"
        "\"calls\":%llu}\n",
        r.rpc.c_str(), static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors), qps, p50,
        p90, p99, p999, r.seconds, static_cast<unsigned long long>(r.duplicates), r.resp_bytes, r.retrain_s,
        static_cast<unsigned long long>(r.calls));
  } else {
    std::printf("%s: ok %llu errors %llu in %.2f s = %.0f/s; latency ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f\n",
                r.rpc.c_str(), static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors),
                r.seconds, qps, p50, p90, p99, p999);
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
    r.seconds = std::max(1e-9, static_cast<double>(std::min(last_done_ns_.load(), end_ns_->load()) - measure_ns_) / 1e9);
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

// One ReportRun stream writing reports as fast as the server reads them.
class ReportStream final : public grpc::ClientBidiReactor<v1::RunReport, v1::RunAck> {
 public:
  using Generator = std::function<void(uint64_t seq, v1::RunReport* report)>;
  ReportStream(v1::AcceleratorSelector::Stub* stub, Generator gen, uint64_t limit, int64_t measure_ns,
               const std::atomic<int64_t>* end_ns, Histogram* hist)
      : gen_(std::move(gen)), limit_(limit), measure_ns_(measure_ns), end_ns_(end_ns), hist_(hist),
        sent_ns_(kRing) {
    if (absl::GetFlag(FLAGS_ack_ranges)) ctx_.AddMetadata(kAckRangesMetadata, "1");
    stub->async()->ReportRun(&ctx_, this);
    StartRead(&ack_);
    NextWrite();
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (ok) NextWrite();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    const int64_t now = NowNs();
    // A ranged ack (--ack_ranges) stands for `count` consecutive reports, each timed from its own send.
    const uint64_t covered = AcksCovered(ack_);
    for (uint64_t seq = ack_.sequence(); seq < ack_.sequence() + covered; ++seq) {
      const int64_t sent = sent_ns_[seq % kRing].load(std::memory_order_relaxed);
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
    acked_ += covered;
    StartRead(&ack_);
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
    done_ = true;
    cv_.notify_all();
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
  int64_t last_ack_ns() const { return last_ack_ns_; }

 private:
  static constexpr size_t kRing = 1 << 16;  // > any stream window

  void NextWrite() {
    const int64_t now = NowNs();
    if ((limit_ > 0 && seq_ >= limit_) || (limit_ == 0 && now >= end_ns_->load(std::memory_order_relaxed))) {
      StartWritesDone();
      return;
    }
    gen_(seq_, &report_);
    sent_ns_[seq_ % kRing].store(now, std::memory_order_relaxed);
    ++seq_;
    grpc::WriteOptions options;
    if (flush_every_ > 1 && seq_ % flush_every_ != 0) options.set_buffer_hint();
    StartWrite(&report_, options);
  }

  grpc::ClientContext ctx_;
  Generator gen_;
  const uint64_t limit_;
  const uint64_t flush_every_ = static_cast<uint64_t>(std::max(1, absl::GetFlag(FLAGS_report_flush_every)));
  const int64_t measure_ns_;
  const std::atomic<int64_t>* end_ns_;
  Histogram* hist_;
  std::vector<std::atomic<int64_t>> sent_ns_;
  v1::RunReport report_;
  v1::RunAck ack_;
  uint64_t seq_ = 0;
  uint64_t durable_ = 0, duplicates_ = 0, rejected_ = 0, acked_ = 0;
  int64_t last_ack_ns_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

std::string RunPrefix() {
  return absl::StrFormat("lg-%d-%x", getpid(),
                         static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()));
}

// Streams: `limit` reports per stream (0 = until the duration ends).
Result RunReports(std::shared_ptr<grpc::Channel> channel, int streams, uint64_t limit, double warmup_s,
                  double duration_s, const std::vector<v1::RunReport>& pool) {
  auto stub = v1::AcceleratorSelector::NewStub(channel);
  Histogram hist;
  const int64_t start = NowNs();
  const int64_t measure = limit > 0 ? start : start + static_cast<int64_t>(warmup_s * 1e9);
  std::atomic<int64_t> end{limit > 0 ? INT64_MAX : measure + static_cast<int64_t>(duration_s * 1e9)};
  const std::string prefix = RunPrefix();
  std::vector<std::unique_ptr<ReportStream>> all;
  for (int s = 0; s < streams; ++s) {
    const std::string stream_prefix = absl::StrCat(prefix, "-s", s, "-");
    auto gen = [&pool, stream_prefix, s](uint64_t seq, v1::RunReport* r) {
      if (seq % 64 == 0 || r->run_id().empty()) *r = pool[(seq / 64 + s * 7) % pool.size()];
      r->set_run_id(absl::StrCat(stream_prefix, seq));
    };
    all.push_back(std::make_unique<ReportStream>(stub.get(), gen, limit, measure, &end, &hist));
  }
  Result r;
  r.rpc = "report";
  int64_t last = measure;
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
    last = std::max(last, s->last_ack_ns());
  }
  r.seconds = std::max(1e-9, static_cast<double>((limit > 0 ? last : std::min(last, end.load())) - measure) / 1e9);
  r.hist = &hist;
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
    std::printf("{\"rpc\":\"retrain\",\"seconds\":%.3f,\"training_seconds\":%.3f,\"rows\":%llu,\"promoted\":%s,"
                "\"version\":%llu}\n",
                (NowNs() - t0) / 1e9, resp.candidate().training_seconds(),
                static_cast<unsigned long long>(resp.candidate().training_rows()),
                resp.candidate().promoted() ? "true" : "false",
                static_cast<unsigned long long>(resp.candidate().version()));
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
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
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
    const auto pool = ReportPool(contexts, k, 1024, 5000);
    const Result r = RunReports(channel, concurrency, 0, warmup, duration, pool);
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
      "[--candidates K] [--contexts unique|bundled] [--json]");
  absl::ParseCommandLine(argc, argv);
  return accelsel::bench::Main();
}
