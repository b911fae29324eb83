// The sweep: every strategy on every job, R times, into a CSV in LLM-Inference-Bench's columns (so `accelsel eval
// --llm-inference-bench` and the server's seeding read it as they read the bundled table) plus what the engine
// measured and the strategy's components. Resumable: rows already in the file are not run again.
#ifndef ACCELSEL_NODE_SWEEP_H_
#define ACCELSEL_NODE_SWEEP_H_

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accelsel/v1/accelsel.pb.h"
#include "node/engine.h"
#include "node/jobs.h"
#include "node/model_files.h"

namespace accelsel::node {

struct SweepOptions {
  // The table. Created with its header when missing; otherwise its header must be SweepHeader() and its rows are
  // kept and skipped (a last line cut short by an interruption is dropped first).
  std::string out_csv;
  // Runs of each (job, strategy), numbered 1..repetitions in the Repetition column. >= 1.
  int repetitions = 3;
};

struct SweepStats {
  size_t rows_written = 0;   // runs made now
  size_t rows_present = 0;   // (job, strategy, repetition) found in the file and not run again
  size_t failed_runs = 0;    // of rows_written, runs that were not OK (written with an empty Latency)
  size_t missing_files = 0;  // (job, strategy) pairs skipped because that weight format's file is missing
};

// The CSV header: LLM-Inference-Bench's eight columns, then Job, Repetition, Status, Message, TTFT ms, TPOT ms,
// Generated Tokens per s, Peak Memory GB, Context ms, Prompt Tokens, Output Tokens, and the components quant,
// kv_cache, flash_attn, threads, batch.
std::vector<std::string> SweepHeader();

// Runs the sweep: for each repetition, for each job, every strategy (interleaved so that a slow spell of the host
// spreads over all strategies instead of landing on one). Each row is written and flushed as soon as its run ends,
// so an interruption loses at most the run in progress. Rows: Hardware = host.accelerator, Num of Hardware 1,
// Framework = the strategy id, Model = the job's model, Input Output Length = prompt tokens (which the job must make
// equal to its output tokens: the table has one length), Batch Size = parallel, Latency = e2e seconds, Throughput =
// parallel x (prompt + output) / Latency (the bundled table's definition: every token, in and out, per second).
// A failed run gets a row with its Status and Message and an empty Latency and Throughput, which readers skip.
// Beside the CSV it writes models.csv and accelerators.csv (the descriptor tables `--descriptors` reads; rows of
// models not in this sweep are kept) and <csv stem>.machine.json (the host, the engine, the sweep's settings).
// `progress` (may be null) gets one line per run.
absl::StatusOr<SweepStats> RunSweep(const std::vector<Job>& jobs, const std::vector<v1::Strategy>& strategies,
                                    Engine& engine, ModelFiles& models, const v1::HardwareDescriptor& host,
                                    const SweepOptions& options, std::ostream* progress);

}  // namespace accelsel::node

#endif  // ACCELSEL_NODE_SWEEP_H_
