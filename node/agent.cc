// Select -> run -> report, one job at a time.
#include "node/agent.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace accelsel::node {

Agent::Agent(client::Client* client, client::TelemetrySender* sender, Engine* engine, ModelFiles* models,
             v1::HardwareDescriptor host, std::vector<v1::Strategy> strategies, AgentOptions options)
    : client_(client),
      sender_(sender),
      engine_(engine),
      models_(models),
      host_(std::move(host)),
      strategies_(std::move(strategies)),
      options_(std::move(options)) {
  for (const v1::Strategy& s : strategies_) by_id_[s.id()] = &s;
}

v1::TaskContext Agent::Context(const Job& job) {
  v1::TaskContext context;
  auto model = models_->Describe(job.model);
  if (model.ok()) {
    *context.mutable_model() = *std::move(model);
  } else {
    context.mutable_model()->set_name(job.model);
  }
  *context.mutable_hardware() = host_;
  v1::WorkloadDescriptor* w = context.mutable_workload();
  w->set_prompt_tokens(job.prompt_tokens);
  w->set_output_tokens(job.output_tokens);
  w->set_batch_size(job.parallel);
  return context;
}

std::vector<const v1::Strategy*> Agent::Candidates(const Job& job) const {
  std::vector<const v1::Strategy*> out;
  for (const v1::Strategy& s : strategies_) {
    auto settings = SettingsFromStrategy(s);
    if (settings.ok() && models_->Exists(job.model, settings->weights)) out.push_back(&s);
  }
  return out;
}

absl::StatusOr<const v1::Strategy*> Agent::Select(const Job& job, const v1::TaskContext& context,
                                                  const std::vector<const v1::Strategy*>& candidates,
                                                  JobOutcome* outcome) {
  if (client_ == nullptr) return absl::FailedPreconditionError("no server");
  if (candidates.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("no model file of ", job.model, " in ", models_->dir()));
  }
  v1::SelectAcceleratorRequest request;
  *request.mutable_context() = context;
  for (const v1::Strategy* s : candidates) request.add_candidate_ids(s->id());
  request.set_objective(options_.objective);
  request.set_allow_exploration(options_.allow_exploration);
  request.set_node_id(options_.node_id);
  // Every candidate comes back ranked (top_k 0), though only the first runs: the server's decision log keeps the
  // whole ranking, which its live regret and off-policy evaluation read.
  if (options_.exclude_lossy) request.mutable_constraints()->set_exclude_lossy(true);
  auto selection = client_->Select(request);
  if (!selection.ok()) return selection.status();
  const v1::SelectAcceleratorResponse& response = selection->response;
  if (response.recommendations_size() == 0) return absl::UnavailableError("the answer ranks no strategy");
  const std::string& first = response.recommendations(0).strategy().id();
  auto it = by_id_.find(first);
  if (it == by_id_.end())
    return absl::UnavailableError(absl::StrCat("the answer ranks \"", first, "\" first, not ours"));
  outcome->decision_id = response.decision_id();
  outcome->select_source = client::SelectSourceName(selection->source);
  if (selection->fallback()) outcome->select_error = selection->error.ToString();
  return it->second;
}

v1::RunReport Agent::MakeReport(const Job& job, const v1::TaskContext& context, const v1::Strategy& strategy,
                                const JobOutcome& outcome) {
  v1::RunReport r;
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  r.set_run_id(absl::StrCat(options_.node_id, ":", job.id, ":", now_ms, ":", runs_++));
  r.set_node_id(options_.node_id);
  r.set_time_unix_ms(now_ms);
  *r.mutable_context() = context;
  r.set_strategy_id(strategy.id());
  // The whole definition rides along: a server that has not seen it registers it when the sender may (operator or
  // no --auth_tokens) and checks it against its catalogue otherwise.
  *r.mutable_strategy() = strategy;
  r.set_decision_id(outcome.decision_id);
  const JobMetrics& m = outcome.metrics;
  r.set_status(m.status);
  if (m.status == v1::RUN_STATUS_OK) {
    v1::RunMetrics* metrics = r.mutable_metrics();
    metrics->set_ttft_ms(m.ttft_ms);
    if (job.output_tokens > 1) metrics->set_tpot_ms(m.tpot_ms);
    metrics->set_e2e_latency_ms(m.e2e_latency_ms);
    metrics->set_throughput_tokens_per_s(m.throughput_tokens_per_s);
    metrics->set_peak_memory_gb(m.peak_memory_gb);
  }
  return r;
}

JobOutcome Agent::RunJob(const Job& job) {
  JobOutcome outcome;
  outcome.job_id = job.id;
  const v1::TaskContext context = Context(job);
  const std::vector<const v1::Strategy*> candidates = Candidates(job);
  auto selected = Select(job, context, candidates, &outcome);
  const v1::Strategy* strategy = nullptr;
  if (selected.ok()) {
    strategy = *selected;
  } else {
    outcome.select_source = "default";
    outcome.select_error = selected.status().ToString();
    outcome.decision_id.clear();
    auto it = by_id_.find(kDefaultStrategyId);
    if (it == by_id_.end()) {
      // Only a caller that left the default out of the catalogue gets here; there is nothing to run or report.
      outcome.metrics.status = v1::RUN_STATUS_NOT_APPLICABLE;
      outcome.metrics.message = "no answer and no default strategy in this node's catalogue";
      return outcome;
    }
    strategy = it->second;
  }
  outcome.strategy_id = strategy->id();
  auto settings = SettingsFromStrategy(*strategy);
  if (!settings.ok()) {
    outcome.metrics.status = v1::RUN_STATUS_NOT_APPLICABLE;
    outcome.metrics.message = settings.status().ToString();
  } else if (!models_->Exists(job.model, settings->weights)) {
    outcome.metrics.status = v1::RUN_STATUS_NOT_APPLICABLE;
    outcome.metrics.message = absl::StrCat("model file ", models_->Path(job.model, settings->weights), " is missing");
  } else {
    outcome.metrics = engine_->Run(job, *settings, models_->Path(job.model, settings->weights));
  }
  if (sender_ != nullptr) {
    v1::RunReport report = MakeReport(job, context, *strategy, outcome);
    outcome.run_id = report.run_id();
    absl::Status sent = sender_->Send(std::move(report));
    if (!sent.ok()) outcome.report_error = sent.ToString();
  }
  return outcome;
}

std::vector<JobOutcome> Agent::Run(const std::vector<Job>& jobs) {
  std::vector<JobOutcome> out;
  out.reserve(jobs.size());
  for (const Job& job : jobs) out.push_back(RunJob(job));
  return out;
}

absl::StatusOr<int> RegisterStrategies(client::Client& client, const std::vector<v1::Strategy>& strategies) {
  int created = 0;
  for (const v1::Strategy& s : strategies) {
    auto r = client.RegisterStrategy(s);
    if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("register ", s.id(), ": ", r.status().message()));
    created += r->created() ? 1 : 0;
  }
  return created;
}

}  // namespace accelsel::node
