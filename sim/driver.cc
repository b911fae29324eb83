// The simulated nodes talking to a real server; see driver.h.
#include "sim/driver.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "grpcpp/grpcpp.h"
#include "proto/convert.h"

namespace accelsel::sim {
namespace {

constexpr size_t kMaxErrors = 5;
constexpr absl::Duration kFlushTimeout = absl::Minutes(5);
// The server's concurrent streams per connection (ServerOptions::max_concurrent_streams_per_connection), less
// room for the unary calls in flight.
constexpr size_t kReportStreamsPerConnection = 64;
// A call refused by a rate limit is tried again after this, up to kRateLimitAttempts times.
constexpr absl::Duration kRateLimitBackoff = absl::Milliseconds(100);
constexpr int kRateLimitAttempts = 100;

// What a node calls through: unary calls and a report stream. Without authentication one link per connection is
// shared by the nodes mapped to it; with it, each node has its own (its token, its stream).
struct Link {
  std::unique_ptr<client::Client> client;
  std::unique_ptr<client::TelemetrySender> sender;
};

class Nodes {
 public:
  Nodes(const Network& net, const DriverOptions& options) : net_(net), options_(options) {
    for (size_t i = 0; i < net.table().strategies.size(); ++i) index_[net.table().strategies[i].id] = i;
  }

  absl::Status Connect(int count) {
    auto target = client::ChannelTarget(options_.address, "server address");
    if (!target.ok()) return target.status();
    const bool auth = !options_.node_tokens.empty();
    if (auth) {
      count = std::max<int>(count, static_cast<int>((net_.nodes().size() + kReportStreamsPerConnection - 1) /
                                                    kReportStreamsPerConnection));
    }
    for (int i = 0; i < count; ++i) {
      // The client library's retries and balancing over replicas (a node's channel), plus the simulator's own
      // arguments.
      grpc::ChannelArguments args = client::ClientChannelArguments(client::ClientOptions());
      // Without this, channels with the same target and arguments share one connection (gRPC's global
      // subchannel pool), and the per-connection stream limit would apply to all of them together.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetMaxReceiveMessageSize(16 << 20);
      channels_.push_back(grpc::CreateCustomChannel(*target, grpc::InsecureChannelCredentials(), args));
    }
    if (auth) {
      for (size_t n = 0; n < net_.nodes().size(); ++n)
        links_.push_back(MakeLink(channels_[n % count], options_.node_tokens[n]));
    } else {
      for (int i = 0; i < count; ++i) links_.push_back(MakeLink(channels_[i], ""));
    }
    client::ClientOptions admin = links_[0].client->options();
    admin.bearer_token = options_.operator_token;
    admin.deadline_ms = 30 * 60 * 1000;  // a retrain on a slow machine takes minutes
    admin_ = std::make_unique<client::Client>(admin, channels_[0]);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    absl::Status health;
    while (absl::Now() < deadline) {
      health = admin_->Health();
      if (health.ok()) return absl::OkStatus();
      absl::SleepFor(absl::Milliseconds(50));
    }
    return absl::UnavailableError(absl::StrCat("server at ", options_.address, " is not serving: ", health.message()));
  }

  absl::Status RegisterCatalogue() {
    for (const model::Strategy& s : net_.table().strategies) {
      v1::Strategy proto;
      ToProto(s, &proto);
      auto r = admin_->RegisterStrategy(proto);
      if (!r.ok())
        return absl::Status(r.status().code(), absl::StrCat("RegisterStrategy ", s.id, ": ", r.status().message()));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<v1::GetModelInfoResponse> ModelInfo() { return admin_->GetModelInfo(); }

  absl::Status Retrain() {
    auto r = admin_->Retrain();
    if (!r.ok()) return r.status();
    ++retrains_;
    return absl::OkStatus();
  }

  Link& LinkOf(uint32_t node) { return links_[node % links_.size()]; }

  absl::Status SendWarm(size_t i) {
    const WarmReport& w = net_.warm_reports()[i];
    return Report(absl::StrFormat("%s-w%010d", options_.run_tag, i), w.node, w.task, w.strategy, "",
                  net_.WarmMeasured(i));
  }

  // Select, run and report job `j`; the outcome goes to `out`.
  absl::Status PlayJob(uint64_t j, JobOutcome* out) {
    const Job& job = net_.jobs()[j];
    const SimTask& task = net_.table().tasks[job.task];
    v1::SelectAcceleratorRequest request;
    *request.mutable_context() = task.context;
    if (options_.all_candidates) {
      for (const model::Strategy& s : net_.table().strategies) request.add_candidate_ids(s.id);
    } else {
      for (uint32_t s : task.present) request.add_candidate_ids(net_.table().strategies[s].id);
    }
    request.set_objective(net_.table().objective);
    request.set_top_k(1);
    request.set_allow_exploration(options_.exploration);
    request.set_node_id(net_.nodes()[job.node].id);
    Link& link = LinkOf(job.node);
    auto response = link.client->SelectAccelerator(request);
    for (int attempt = 1; attempt < kRateLimitAttempts && !response.ok() &&
                          response.status().code() == absl::StatusCode::kResourceExhausted;
         ++attempt) {
      absl::SleepFor(kRateLimitBackoff);
      response = link.client->SelectAccelerator(request);
    }
    if (!response.ok() || response->recommendations().empty()) {
      select_errors_.fetch_add(1);
      const absl::Status st = response.ok() ? absl::InternalError("no recommendation") : response.status();
      Error(absl::StrCat("job ", j, " select: ", st.ToString()));
      return st;
    }
    selects_ok_.fetch_add(1);
    const v1::Recommendation& first = response->recommendations(0);
    auto it = index_.find(first.strategy().id());
    if (it == index_.end()) {
      Error(absl::StrCat("job ", j, ": the server placed '", first.strategy().id(), "' first, not a candidate"));
      return absl::OkStatus();
    }
    out->choice = static_cast<uint32_t>(it->second);
    out->explored = first.explored();
    out->selection_probability = first.selection_probability();
    out->model_version = response->model_version();
    const double value = task.Has(out->choice) ? net_.Reported(j, job.task, out->choice) : model::kMissing;
    return Report(absl::StrFormat("%s-j%010d", options_.run_tag, j), job.node, job.task, out->choice,
                  response->decision_id(), value);
  }

  absl::Status FlushAll() {
    for (Link& l : links_) {
      if (absl::Status st = l.sender->Flush(kFlushTimeout); !st.ok()) return st;
    }
    return absl::OkStatus();
  }
  absl::Status FlushOf(uint32_t node) { return LinkOf(node).sender->Flush(kFlushTimeout); }

  void Collect(DriverResult* result) {
    for (Link& l : links_) {
      const client::TelemetrySenderStats s = l.sender->stats();
      result->acked_durable += s.durable;
      result->acked_duplicate += s.duplicate;
      result->rejected += s.rejected;
      result->unacknowledged += s.buffered;
    }
    result->reports_sent = reports_sent_.load();
    result->selects_ok = selects_ok_.load();
    result->select_errors = select_errors_.load();
    result->retrains = retrains_.load();
    absl::MutexLock lock(&mu_);
    result->errors = errors_;
  }

  void Close() {
    for (Link& l : links_) l.sender->Close();
  }

 private:
  // NaN value = the strategy does not apply to the task: reported as NOT_APPLICABLE.
  absl::Status Report(const std::string& run_id, uint32_t node, uint32_t task, uint32_t strategy,
                      const std::string& decision_id, double value) {
    v1::RunReport r;
    r.set_run_id(run_id);
    r.set_node_id(net_.nodes()[node].id);
    *r.mutable_context() = net_.table().tasks[task].context;
    r.set_strategy_id(net_.table().strategies[strategy].id);
    r.set_decision_id(decision_id);
    r.set_schema_version(1);
    // The store scans runs in time order, and that order reaches training. Server receive times tie within a
    // millisecond and then order by run_id, so deterministic runs stamp strictly increasing times themselves.
    if (options_.deterministic) {
      last_time_ms_ = std::max(absl::ToUnixMillis(absl::Now()), last_time_ms_ + 1);
      r.set_time_unix_ms(last_time_ms_);
    }
    if (model::IsMissing(value)) {
      r.set_status(v1::RUN_STATUS_NOT_APPLICABLE);
    } else {
      r.set_status(v1::RUN_STATUS_OK);
      if (net_.table().maximize) {
        r.mutable_metrics()->set_throughput_tokens_per_s(value);
      } else {
        r.mutable_metrics()->set_e2e_latency_ms(value);
      }
    }
    reports_sent_.fetch_add(1);
    absl::Status st = LinkOf(node).sender->Send(std::move(r));
    if (!st.ok()) Error(absl::StrCat("report ", run_id, ": ", st.ToString()));
    return st;
  }

  Link MakeLink(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
    client::ClientOptions co;
    co.target = options_.address;
    co.deadline_ms = 30000;
    co.bearer_token = token;
    Link link;
    link.client = std::make_unique<client::Client>(co, channel);
    client::TelemetrySenderOptions so;
    // One stream per node holds little; a shared one carries many nodes' reports.
    so.capacity_reports = token.empty() ? 4096 : 64;
    so.on_rejected = [this](const std::string& run_id, const std::string& reason) {
      Error(absl::StrCat("report ", run_id, " rejected: ", reason));
    };
    link.sender = std::make_unique<client::TelemetrySender>(channel, co, so);
    return link;
  }

  void Error(std::string text) {
    absl::MutexLock lock(&mu_);
    if (errors_.size() < kMaxErrors) errors_.push_back(std::move(text));
  }

  const Network& net_;
  const DriverOptions& options_;
  absl::flat_hash_map<std::string, size_t> index_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<Link> links_;
  std::unique_ptr<client::Client> admin_;  // long deadline, for Retrain
  std::atomic<uint64_t> reports_sent_{0}, selects_ok_{0}, select_errors_{0};
  std::atomic<uint64_t> retrains_{0};
  int64_t last_time_ms_ = 0;  // deterministic mode: one thread reports
  absl::Mutex mu_;
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

std::atomic<bool> stop_requested{false};

ServerSample Sample(Nodes& nodes, const DriverOptions& options, uint64_t jobs_done, absl::Time start) {
  ServerSample s;
  s.jobs_done = jobs_done;
  s.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (auto info = nodes.ModelInfo(); info.ok()) {
    s.serving_version = info->serving_version();
    s.runs_stored = info->runs_stored();
    if (info->serving_version() > 0) {
      s.holdout_mape = info->serving().evaluation().holdout_mape();
      s.holdout_coverage80 = info->serving().evaluation().holdout_coverage80();
      s.holdout_top1 = info->serving().evaluation().holdout_top1();
    }
  }
  if (options.rss) s.rss_bytes = options.rss();
  return s;
}

}  // namespace

void StopRuns() { stop_requested.store(true); }

absl::StatusOr<DriverResult> RunAgainstServer(const Network& net, const DriverOptions& options) {
  if (options.concurrency < 1 || options.channels < 1) {
    return absl::InvalidArgumentError("concurrency and channels must be >= 1");
  }
  DriverResult result;
  Nodes nodes(net, options);
  if (absl::Status st = nodes.Connect(options.deterministic ? 1 : options.channels); !st.ok()) return st;
  auto before = nodes.ModelInfo();
  if (!before.ok()) return before.status();
  result.runs_stored_before = before->runs_stored();
  if (absl::Status st = nodes.RegisterCatalogue(); !st.ok()) return st;

  const absl::Time warm_start = absl::Now();
  for (size_t i = 0; i < net.warm_reports().size(); ++i) {
    if (absl::Status st = nodes.SendWarm(i); !st.ok()) return st;
  }
  if (absl::Status st = nodes.FlushAll(); !st.ok()) return st;
  if (options.deterministic && !net.warm_reports().empty()) {
    if (absl::Status st = nodes.Retrain(); !st.ok()) return st;
  }
  result.warm_seconds = absl::ToDoubleSeconds(absl::Now() - warm_start);

  const uint64_t jobs = net.jobs().size();
  result.outcomes.assign(jobs, JobOutcome{});
  const absl::Time start = absl::Now();
  result.samples.push_back(Sample(nodes, options, 0, start));
  absl::Status failure;
  if (options.deterministic) {
    for (uint64_t j = 0; j < jobs && !stop_requested.load(); ++j) {
      absl::Status st = nodes.PlayJob(j, &result.outcomes[j]);
      if (st.ok()) st = nodes.FlushOf(net.jobs()[j].node);
      if (!st.ok()) {
        failure = absl::Status(st.code(), absl::StrCat("job ", j, ": ", st.message()));
        break;
      }
      if (options.retrain_every_jobs > 0 && (j + 1) % options.retrain_every_jobs == 0 && j + 1 < jobs) {
        if (st = nodes.Retrain(); !st.ok()) {
          failure = absl::Status(st.code(), absl::StrCat("Retrain after job ", j + 1, ": ", st.message()));
          break;
        }
      }
      if ((j + 1) % options.sample_every_jobs == 0) result.samples.push_back(Sample(nodes, options, j + 1, start));
      if (options.progress != nullptr) options.progress->Update(static_cast<int64_t>(j + 1));
    }
    result.jobs_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  } else {
    std::atomic<uint64_t> next{0}, done{0};
    std::atomic<bool> finished{false};
    absl::Mutex samples_mu;
    std::thread monitor([&] {
      while (!finished.load()) {
        absl::SleepFor(absl::Milliseconds(250));
        ServerSample s = Sample(nodes, options, done.load(), start);
        absl::MutexLock lock(&samples_mu);
        result.samples.push_back(s);
      }
    });
    std::vector<std::thread> workers;
    for (int w = 0; w < options.concurrency; ++w) {
      workers.emplace_back([&] {
        for (uint64_t j; !stop_requested.load() && (j = next.fetch_add(1)) < jobs;) {
          if (options.jobs_per_s > 0) {
            const absl::Time due = start + absl::Seconds(static_cast<double>(j) / options.jobs_per_s);
            if (const absl::Time now = absl::Now(); due > now) absl::SleepFor(due - now);
          }
          (void)nodes.PlayJob(j, &result.outcomes[j]);  // errors are counted and the first few kept
          const uint64_t finished_jobs = done.fetch_add(1) + 1;
          if (options.progress != nullptr) options.progress->Update(static_cast<int64_t>(finished_jobs));
          if (options.retrain_every_jobs > 0 && (j + 1) % options.retrain_every_jobs == 0) (void)nodes.Retrain();
        }
      });
    }
    for (std::thread& t : workers) t.join();
    result.jobs_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    finished.store(true);
    monitor.join();
  }
  if (stop_requested.load() && failure.ok()) failure = absl::CancelledError("interrupted");
  if (absl::Status st = nodes.FlushAll(); !st.ok() && failure.ok()) failure = st;
  result.drain_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  result.samples.push_back(Sample(nodes, options, jobs, start));
  nodes.Collect(&result);
  nodes.Close();
  if (!failure.ok()) return failure;
  auto after = nodes.ModelInfo();
  if (!after.ok()) return after.status();
  result.runs_stored_after = after->runs_stored();
  result.serving_version = after->serving_version();
  result.models_in_history = static_cast<uint64_t>(after->history_size());
  return result;
}

}  // namespace accelsel::sim
