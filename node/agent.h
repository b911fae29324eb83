// The node agent: for each job, ask accelsel which strategy to run (SelectAccelerator over the catalogue strategies
// this host and this model's files allow), run it through the engine, and report the run with the decision_id
// through a TelemetrySender. When the server cannot answer, the client's fallback gives the last answer to the same
// request (Client::Select); without one (or when the server refused) it runs llama.cpp's defaults and still queues
// the report.
#ifndef ACCELSEL_NODE_AGENT_H_
#define ACCELSEL_NODE_AGENT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"
#include "client/client.h"
#include "client/telemetry_sender.h"
#include "node/engine.h"
#include "node/jobs.h"
#include "node/model_files.h"

namespace accelsel::node {

struct AgentOptions {
  // RunReport.node_id and SelectAcceleratorRequest.node_id; an id (a node token's id replaces it on the server).
  std::string node_id = "accelsel-node";
  // SelectAcceleratorRequest.allow_exploration: let the server try a plausible runner-up now and then.
  bool allow_exploration = false;
  // What the server ranks by; OBJECTIVE_E2E_LATENCY = the job's wall time.
  v1::Objective objective = v1::OBJECTIVE_E2E_LATENCY;
  // Constraints.exclude_lossy: only strategies that keep the model's outputs (F16 weights, f16 cache).
  bool exclude_lossy = false;
};

// What happened to one job.
struct JobOutcome {
  std::string job_id;
  std::string strategy_id;  // what ran
  std::string decision_id;  // the answer's id; empty for a cached answer and when the default ran
  // Where the strategy came from: "server" (its answer), "cache" (the client's last server answer to the same
  // request, the server being unreachable) or "default" (kDefaultStrategyId, without an answer).
  std::string select_source;
  std::string select_error;  // why the server's answer is missing; empty when it was used
  JobMetrics metrics;
  std::string run_id;        // the report's run_id; empty when no report was made
  std::string report_error;  // why the report was not queued (sender buffer full or closed); empty when queued
};

// Thread safety: one thread drives an Agent; the client and sender it borrows may be shared (both are
// thread-safe). Ownership: borrows everything; all of it must outlive the agent.
class Agent {
 public:
  // `client` null = no server (every job runs the default); `sender` null = no reports. `strategies` is the
  // catalogue this node may run (StrategiesForHost), the default among them.
  Agent(client::Client* client, client::TelemetrySender* sender, Engine* engine, ModelFiles* models,
        v1::HardwareDescriptor host, std::vector<v1::Strategy> strategies, AgentOptions options);

  // The task context of `job`: the model from its F16 GGUF (name only when that cannot be read), this host,
  // and the workload (prompt_tokens, output_tokens, batch_size = parallel).
  v1::TaskContext Context(const Job& job);

  // The strategies of the catalogue whose model file exists for `job`'s model, in catalogue order.
  std::vector<const v1::Strategy*> Candidates(const Job& job) const;

  JobOutcome RunJob(const Job& job);
  std::vector<JobOutcome> Run(const std::vector<Job>& jobs);

 private:
  // The first-placed strategy of a Client::Select answer over `candidates` (the server's, or its cached one while
  // the server is unreachable: then `outcome`'s select_source is "cache" and select_error says why), or the error
  // that sends the job to the default. Sets `outcome`'s decision_id.
  absl::StatusOr<const v1::Strategy*> Select(const Job& job, const v1::TaskContext& context,
                                             const std::vector<const v1::Strategy*>& candidates, JobOutcome* outcome);
  v1::RunReport MakeReport(const Job& job, const v1::TaskContext& context, const v1::Strategy& strategy,
                           const JobOutcome& outcome);

  client::Client* client_;
  client::TelemetrySender* sender_;
  Engine* engine_;
  ModelFiles* models_;
  v1::HardwareDescriptor host_;
  std::vector<v1::Strategy> strategies_;
  std::map<std::string, const v1::Strategy*> by_id_;
  AgentOptions options_;
  uint64_t runs_ = 0;  // run_id suffix: unique within the process even for jobs that finish in the same ms
};

// Registers `strategies` with the server (an operator token when the server checks tokens): how many were new.
absl::StatusOr<int> RegisterStrategies(client::Client& client, const std::vector<v1::Strategy>& strategies);

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_AGENT_H_
