// LLM-Inference-Bench import: mapping of a small fixture (duplicates, label variants, unknown names, bad rows),
// the vendored 4,772-row table, and the descriptor tables in data/descriptors/.
#include "datasets/llm_inference_bench.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "util/hash.h"

namespace accelsel::datasets {
namespace {

using model::IsMissing;
using model::RunRecord;
using model::RunStatus;

std::string SourceDir() {
  const char* d = std::getenv("ACCELSEL_SOURCE_DIR");
  return d != nullptr ? d : ".";
}
std::string Fixture() { return SourceDir() + "/tests/fixtures/llm_bench_small.csv"; }
std::string Descriptors() { return SourceDir() + "/data/descriptors"; }
std::string BenchCsv() { return SourceDir() + "/data/llm-inference-bench/throughput_all_results.csv"; }

std::string TempFile(const std::string& name, const std::string& content) {
  const char* t = std::getenv("ACCELSEL_TEST_TMPDIR");
  const std::string path = absl::StrCat(t != nullptr ? t : "/tmp", "/llm_bench_", getpid(), "_", name);
  std::ofstream(path) << content;
  return path;
}

const RunRecord* Find(const std::vector<RunRecord>& runs, const std::string& accelerator, uint32_t count,
                      const std::string& strategy, const std::string& model, uint32_t length, uint32_t batch,
                      double latency_ms) {
  for (const auto& r : runs) {
    const auto& c = r.context;
    if (c.hardware.accelerator == accelerator && c.hardware.count == count && r.strategy_id == strategy &&
        c.model.name == model && c.workload.prompt_tokens == length && c.workload.batch_size == batch &&
        std::abs(r.metrics.e2e_latency_ms - latency_ms) < 1e-6) {
      return &r;
    }
  }
  return nullptr;
}

TEST(LlmBenchTest, FixtureCounts) {
  LlmBenchImportStats st;
  auto runs = LoadLlmInferenceBench(Fixture(), Descriptors(), &st);
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(st.rows_read, 13u);
  EXPECT_EQ(st.rows_skipped, 2u);
  ASSERT_EQ(st.skip_reasons.size(), 2u);
  EXPECT_NE(st.skip_reasons[0].find("Latency"), std::string::npos) << st.skip_reasons[0];
  EXPECT_NE(st.skip_reasons[1].find("6 fields"), std::string::npos) << st.skip_reasons[1];
  EXPECT_EQ(st.identical_rows_folded, 1u);
  EXPECT_EQ(st.runs, 10u);
  EXPECT_EQ(runs->size(), 10u);
  EXPECT_EQ(st.repeated_task_rows, 1u);            // H100 vLLM 512/16 measured twice
  EXPECT_EQ(st.repeated_task_rows_canonical, 2u);  // + Intel Max 1550 repeating an Intel PVC task
  EXPECT_EQ(st.label_variant_rows, 3u);
  EXPECT_EQ(st.label_mapping.at("Intel PVC GPU"), "Intel Max 1550 GPU");
  EXPECT_EQ(st.label_mapping.at("Intel Max 1550"), "Intel Max 1550 GPU");
  EXPECT_EQ(st.rows_unknown_model, 1u);
  EXPECT_EQ(st.rows_unknown_accelerator, 1u);
  EXPECT_EQ(st.unknown_models, std::set<std::string>{"acme/unknown-model-3B"});
  EXPECT_EQ(st.unknown_accelerators, std::set<std::string>{"Acme X1 NPU"});
}

TEST(LlmBenchTest, FixtureMapping) {
  auto runs = LoadLlmInferenceBench(Fixture(), Descriptors(), nullptr);
  ASSERT_TRUE(runs.ok()) << runs.status();

  const RunRecord* trt =
      Find(*runs, "Nvidia H100 GPU", 1, "tensorrt-llm", "meta-llama/Meta-Llama-3-8B", 512, 16, 8250.0);
  ASSERT_NE(trt, nullptr);
  EXPECT_EQ(trt->node_id, "llm-inference-bench");
  EXPECT_EQ(trt->status, RunStatus::kOk);
  EXPECT_DOUBLE_EQ(trt->metrics.throughput_tokens_per_s, 1985.5);
  EXPECT_TRUE(IsMissing(trt->metrics.ttft_ms));
  EXPECT_EQ(trt->context.workload.output_tokens, 512u);
  EXPECT_EQ(trt->context.model.family, "llama");
  EXPECT_EQ(trt->context.model.layers, 32u);
  EXPECT_EQ(trt->context.model.kv_heads, 8u);
  EXPECT_DOUBLE_EQ(trt->context.hardware.memory_gb, 80);
  EXPECT_GT(trt->context.hardware.memory_bandwidth_gbps, 0);
  EXPECT_GT(trt->context.hardware.peak_tflops, 0);
  EXPECT_EQ(trt->run_id.rfind("llmib-", 0), 0u);

  // Both Intel labels land on one canonical accelerator, with its descriptors.
  const RunRecord* pvc = Find(*runs, "Intel Max 1550 GPU", 1, "vllm", "mistralai/Mistral-7B-v0.1", 128, 1, 2000.0);
  const RunRecord* max = Find(*runs, "Intel Max 1550 GPU", 1, "vllm", "mistralai/Mistral-7B-v0.1", 128, 1, 2100.0);
  ASSERT_NE(pvc, nullptr);
  ASSERT_NE(max, nullptr);
  EXPECT_NE(pvc->run_id, max->run_id);
  EXPECT_DOUBLE_EQ(pvc->context.hardware.memory_gb, 128);
  EXPECT_EQ(pvc->context.hardware.interconnect, max->context.hardware.interconnect);

  // Repeated measurements are distinct runs; the identical row is not there twice.
  const RunRecord* a = Find(*runs, "Nvidia H100 GPU", 1, "vllm", "meta-llama/Meta-Llama-3-8B", 512, 16, 10500.0);
  const RunRecord* b = Find(*runs, "Nvidia H100 GPU", 1, "vllm", "meta-llama/Meta-Llama-3-8B", 512, 16, 10750.0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->run_id, b->run_id);
  std::set<std::string> ids;
  for (const auto& r : *runs) EXPECT_TRUE(ids.insert(r.run_id).second) << r.run_id;

  // MoE-free 70B model on Gaudi2; unknown names import with empty descriptors.
  const RunRecord* gaudi =
      Find(*runs, "Habana Gaudi2", 4, "deepspeed", "meta-llama/Llama-2-70b-hf", 1024, 64, 120000.0);
  ASSERT_NE(gaudi, nullptr);
  EXPECT_EQ(gaudi->context.model.layers, 80u);
  const RunRecord* unknown = Find(*runs, "Acme X1 NPU", 1, "vllm", "acme/unknown-model-3B", 128, 1, 500.0);
  ASSERT_NE(unknown, nullptr);
  EXPECT_EQ(unknown->context.model.layers, 0u);
  EXPECT_DOUBLE_EQ(unknown->context.hardware.memory_gb, 0);
  EXPECT_EQ(unknown->context.hardware.count, 1u);
}

TEST(LlmBenchTest, RunIdsAreStableAcrossImports) {
  auto first = LoadLlmInferenceBench(Fixture(), Descriptors(), nullptr);
  auto second = LoadLlmInferenceBench(Fixture(), "", nullptr);  // descriptors do not enter the id
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(first->size(), second->size());
  for (size_t i = 0; i < first->size(); ++i) EXPECT_EQ((*first)[i].run_id, (*second)[i].run_id);
}

TEST(LlmBenchTest, WithoutDescriptorsEveryRowIsUnknownButImported) {
  LlmBenchImportStats st;
  auto runs = LoadLlmInferenceBench(Fixture(), "", &st);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 10u);
  EXPECT_EQ(st.rows_unknown_model, 10u);
  EXPECT_EQ(st.rows_unknown_accelerator, 10u);
  EXPECT_EQ(st.label_variant_rows, 0u);
}

TEST(LlmBenchTest, StrategiesForCatalogue) {
  auto runs = LoadLlmInferenceBench(Fixture(), Descriptors(), nullptr);
  ASSERT_TRUE(runs.ok());
  const auto strategies = LlmBenchStrategies(*runs);
  std::vector<std::string> ids;
  for (const auto& s : strategies) {
    ids.push_back(s.id);
    ASSERT_EQ(s.components.size(), 1u);
    EXPECT_EQ(s.components[0].first, "engine");
    EXPECT_EQ(s.components[0].second, s.id);
    EXPECT_FALSE(s.description.empty());
  }
  EXPECT_EQ(ids,
            (std::vector<std::string>{"deepspeed", "deepspeed-mii", "llama.cpp", "sambaflow", "tensorrt-llm", "vllm"}));
}

TEST(LlmBenchTest, NormalizeFramework) {
  EXPECT_EQ(NormalizeFramework("vLLM"), "vllm");
  EXPECT_EQ(NormalizeFramework(" TensorRT-LLM "), "tensorrt-llm");
  EXPECT_EQ(NormalizeFramework("Deepspeed-MII"), "deepspeed-mii");
  EXPECT_EQ(NormalizeFramework("llama.cpp"), "llama.cpp");
  EXPECT_EQ(NormalizeFramework("Some Engine (beta)"), "some-engine--beta-");
  EXPECT_EQ(NormalizeFramework(""), "unknown");
}

// Every field of every imported run and every import statistic of the bundled table, folded into one stable hash:
// a change of the CSV reading (quoting, blank lines, line ends, number parsing) that alters any run shows here.
std::string Digest(const std::vector<RunRecord>& runs, const LlmBenchImportStats& st) {
  std::string text;
  for (const auto& r : runs) {
    const auto& c = r.context;
    absl::StrAppend(&text, r.run_id, "|", r.node_id, "|", r.strategy_id, "|", c.model.name, "|", c.model.family, "|",
                    c.model.weight_dtype, "|", absl::StrFormat("%.17g", c.model.parameters_b), "|", c.model.layers, "|",
                    c.model.hidden_size, "|", c.model.attention_heads, "|", c.model.kv_heads, "|", c.model.experts, "|",
                    c.model.active_experts, "|", c.hardware.accelerator, "|", c.hardware.count, "|",
                    c.hardware.interconnect, "|",
                    absl::StrFormat("%.17g/%.17g/%.17g", c.hardware.memory_gb, c.hardware.memory_bandwidth_gbps,
                                    c.hardware.peak_tflops),
                    "|", c.workload.prompt_tokens, "/", c.workload.output_tokens, "/", c.workload.batch_size, "|",
                    absl::StrFormat("%.17g/%.17g", r.metrics.e2e_latency_ms, r.metrics.throughput_tokens_per_s), "\n");
  }
  absl::StrAppend(&text, st.rows_read, "/", st.runs, "/", st.identical_rows_folded, "/", st.repeated_task_rows, "/",
                  st.repeated_task_rows_canonical, "/", st.rows_skipped, "/", st.label_variant_rows, "/",
                  st.rows_unknown_model, "/", st.rows_unknown_accelerator);
  for (const auto& why : st.skip_reasons) absl::StrAppend(&text, "|", why);
  for (const auto& [label, canonical] : st.label_mapping) absl::StrAppend(&text, "|", label, "=", canonical);
  return absl::StrFormat("%016x", util::StableHash(text));
}

TEST(LlmBenchTest, VendoredTableImportIsPinned) {
  LlmBenchImportStats st;
  auto runs = LoadLlmInferenceBench(BenchCsv(), Descriptors(), &st);
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(Digest(*runs, st), "e32c5f0a10e40ddb");
}

TEST(LlmBenchTest, FixtureSkipReasonsArePinned) {
  LlmBenchImportStats st;
  auto runs = LoadLlmInferenceBench(Fixture(), Descriptors(), &st);
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(st.skip_reasons, (std::vector<std::string>{"line 13: Latency \"not-a-number\" is not a finite number",
                                                       "line 14: 6 fields, header has 8"}));
  EXPECT_EQ(Digest(*runs, st), "b1217ae21140f656");
}

TEST(LlmBenchTest, VendoredTable) {
  LlmBenchImportStats st;
  auto runs = LoadLlmInferenceBench(BenchCsv(), Descriptors(), &st);
  ASSERT_TRUE(runs.ok()) << runs.status();
  // data/README.md says 4,771 rows: that is `wc -l` minus the header, but the last row has no newline.
  EXPECT_EQ(st.rows_read, 4772u);
  EXPECT_EQ(st.rows_skipped, 0u);
  EXPECT_EQ(st.identical_rows_folded, 0u);  // no row repeats another's content exactly
  EXPECT_EQ(st.repeated_task_rows, 57u);    // the 57 "duplicates": same key, different measurements
  EXPECT_EQ(st.repeated_task_rows_canonical, 81u);
  EXPECT_EQ(st.runs, 4772u);
  EXPECT_EQ(st.label_variant_rows, 398u + 24u);
  EXPECT_EQ(st.rows_unknown_model, 0u);
  EXPECT_EQ(st.rows_unknown_accelerator, 0u);
  std::set<std::string> ids, models, accelerators;
  std::map<std::string, int> per_strategy;
  for (const auto& r : *runs) {
    ids.insert(r.run_id);
    models.insert(r.context.model.name);
    accelerators.insert(r.context.hardware.accelerator);
    ++per_strategy[r.strategy_id];
    ASSERT_GT(r.metrics.e2e_latency_ms, 0);
  }
  EXPECT_EQ(ids.size(), 4772u);
  EXPECT_EQ(models.size(), 15u);
  EXPECT_EQ(accelerators.size(), 8u);  // 9 labels, two of them one device family
  EXPECT_EQ(per_strategy["vllm"], 2067);
  EXPECT_EQ(per_strategy["llama.cpp"], 1570);
  EXPECT_EQ(per_strategy["tensorrt-llm"], 595);
  EXPECT_EQ(per_strategy["deepspeed"], 326);
  EXPECT_EQ(per_strategy["deepspeed-mii"], 173);
  EXPECT_EQ(per_strategy["sambaflow"], 41);
}

TEST(LlmBenchTest, DescriptorTablesHaveSourcesAndPlausibleValues) {
  auto tables = LoadDescriptorTables(Descriptors());
  ASSERT_TRUE(tables.ok()) << tables.status();
  EXPECT_EQ(tables->models.size(), 15u);
  for (const auto& [name, m] : tables->models) {
    EXPECT_GT(m.parameters_b, 1) << name;
    EXPECT_GT(m.layers, 0u) << name;
    EXPECT_GT(m.hidden_size, 0u) << name;
    EXPECT_LE(m.kv_heads, m.attention_heads) << name;
    EXPECT_FALSE(m.weight_dtype.empty()) << name;
  }
  const auto* mixtral = tables->FindModel("mistralai/Mixtral-8x7B-v0.1");
  ASSERT_NE(mixtral, nullptr);
  EXPECT_EQ(mixtral->experts, 8u);
  EXPECT_EQ(mixtral->active_experts, 2u);
  for (const auto& [name, a] : tables->accelerators) {
    EXPECT_FALSE(a.source.empty()) << name;
    EXPECT_GT(a.descriptor.memory_gb, 0) << name;
    EXPECT_GT(a.descriptor.peak_tflops, 0) << name;
  }
  // Lookup by label and by canonical name.
  ASSERT_NE(tables->FindAccelerator("Intel PVC GPU"), nullptr);
  ASSERT_NE(tables->FindAccelerator("Intel Max 1550 GPU"), nullptr);
  EXPECT_EQ(tables->FindAccelerator("nonexistent"), nullptr);
  // Names typed by people: exact first, else ignoring case; the import's Find* stay exact.
  EXPECT_EQ(tables->MatchModel("mistralai/Mixtral-8x7B-v0.1"), mixtral);
  EXPECT_EQ(tables->MatchModel("MISTRALAI/mixtral-8x7b-v0.1"), mixtral);
  EXPECT_EQ(tables->FindModel("MISTRALAI/mixtral-8x7b-v0.1"), nullptr);
  const auto* pvc = tables->MatchAccelerator("intel pvc gpu");
  ASSERT_NE(pvc, nullptr);
  EXPECT_EQ(pvc->descriptor.accelerator, "Intel Max 1550 GPU");
  EXPECT_NE(tables->MatchAccelerator("INTEL MAX 1550 GPU"), nullptr);
  EXPECT_EQ(tables->MatchAccelerator("Intel PVC"), nullptr);
  EXPECT_EQ(tables->MatchModel(""), nullptr);
}

TEST(LlmBenchTest, MatchIgnoringCaseDoesNotGuessBetweenDifferentEntries) {
  DescriptorTables t;
  t.models["org/M"].name = "org/M";
  t.models["org/M"].layers = 32;
  t.models["ORG/m"].name = "ORG/m";
  t.models["ORG/m"].layers = 40;
  EXPECT_EQ(t.MatchModel("org/M")->layers, 32u) << "an exact name is never ambiguous";
  EXPECT_EQ(t.MatchModel("Org/M"), nullptr);
  t.models["ORG/m"].layers = 32;
  ASSERT_NE(t.MatchModel("Org/M"), nullptr) << "equal entries are no ambiguity";
}

TEST(LlmBenchTest, Errors) {
  EXPECT_EQ(LoadLlmInferenceBench("/nonexistent/x.csv", "", nullptr).status().code(), absl::StatusCode::kNotFound);
  const std::string no_latency = TempFile("nolat.csv",
                                          "Hardware,Num of Hardware,Framework,Model,Input Output Length,"
                                          "Batch Size,Throughput\nA,1,vLLM,m,128,1,5\n");
  auto r = LoadLlmInferenceBench(no_latency, "", nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("Latency"), absl::string_view::npos) << r.status();
  EXPECT_FALSE(LoadLlmInferenceBench(Fixture(), "/nonexistent-dir", nullptr).ok());

  // A descriptor table with a bad number names the file and line.
  const char* t = std::getenv("ACCELSEL_TEST_TMPDIR");
  const std::string dir = absl::StrCat(t != nullptr ? t : "/tmp", "/llm_bench_desc_", getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/models.csv") << "name,family,parameters_b,layers,hidden_size,attention_heads,kv_heads,"
                                        "experts,active_experts,weight_dtype,source\n"
                                        "m,f,seven,32,4096,32,8,0,0,bf16,somewhere\n";
  std::ofstream(dir + "/accelerators.csv") << "name,canonical_name,memory_gb,memory_bandwidth_gbps,peak_tflops,"
                                              "interconnect,source\n";
  auto bad = LoadDescriptorTables(dir);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("models.csv:2"), absl::string_view::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("parameters_b"), absl::string_view::npos) << bad.status();
}

}  // namespace
}  // namespace accelsel::datasets
