// Hostile peers against the real server (127.0.0.1:0, RocksDB in a temp folder): bytes that are not the message
// they claim to be, values beyond float range, unknown fields, nodes that try to create catalogue entries,
// oversized definitions, compressed requests, and a token file that anyone could edit. Raw bytes go through
// grpc::GenericStub, so the HTTP/2 and gRPC framing are real and only the payload is hostile.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "gtest/gtest.h"
#include "server/auth_tokens.h"
#include "tests/server/test_server.h"

namespace accelsel::testing {
namespace {

using ::testing::HasSubstr;

grpc::ByteBuffer Serialized(const google::protobuf::Message& m) { return Bytes(m.SerializeAsString()); }

// Not a valid protobuf encoding: field number 0 is reserved, and the varint that follows is truncated.
const std::string kGarbage("\x00\xff\xff\xff", 4);

// A ReportRun stream over raw bytes, driven step by step through a completion queue.
class RawReportStream {
 public:
  RawReportStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& token = "") : stub_(channel) {
    SetDeadline(&ctx_);
    if (!token.empty()) ctx_.AddMetadata("authorization", std::string("Bearer ") + token);
    call_ = stub_.PrepareCall(&ctx_, "/accelsel.v1.AcceleratorSelector/ReportRun", &cq_);
    call_->StartCall(Tag(1));
    EXPECT_TRUE(Wait(1));
  }
  ~RawReportStream() {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  bool Write(const grpc::ByteBuffer& bytes) {
    call_->Write(bytes, Tag(2));
    return Wait(2);
  }
  void WritesDone() {
    call_->WritesDone(Tag(3));
    Wait(3);
  }
  // Reads acks until the server ends the stream, then returns its status.
  grpc::Status ReadAllAndFinish(std::vector<v1::RunAck>* acks) {
    for (;;) {
      grpc::ByteBuffer bytes;
      call_->Read(&bytes, Tag(4));
      if (!Wait(4)) break;
      v1::RunAck ack;
      grpc::ProtoBufferReader reader(&bytes);
      EXPECT_TRUE(ack.ParseFromZeroCopyStream(&reader));
      acks->push_back(ack);
    }
    grpc::Status status;
    call_->Finish(&status, Tag(5));
    Wait(5);
    return status;
  }

 private:
  static void* Tag(intptr_t i) { return reinterpret_cast<void*>(i); }
  bool Wait(intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq_.Next(&tag, &ok));
    EXPECT_EQ(tag, Tag(want));
    return ok;
  }

  grpc::GenericStub stub_;
  grpc::ClientContext ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
};

class HostilePeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Start([](server::ServerOptions&) {});
  }

  template <typename Tweak>
  void Start(Tweak tweak) {
    if (server_) server_->Shutdown();
    server_.reset();
    dir_ = FreshDir("hostile");
    auto o = TestOptions(dir_);
    tweak(o);
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    conn_ = Connect(server_->port());
  }

  void StartWithTokens() {
    Start([this](server::ServerOptions& o) { o.access.auth_tokens_file = WriteTokenFile(dir_); });
  }

  grpc::Status Register(const v1::Strategy& strategy, const std::string& token = "") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (!token.empty()) ctx.AddMetadata("authorization", std::string("Bearer ") + token);
    v1::RegisterStrategyRequest req;
    *req.mutable_strategy() = strategy;
    v1::RegisterStrategyResponse resp;
    return conn_.selector->RegisterStrategy(&ctx, req, &resp);
  }

  grpc::Status Report(const std::vector<v1::RunReport>& reports, std::vector<v1::RunAck>* acks,
                      const std::string& token = "") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (!token.empty()) ctx.AddMetadata("authorization", std::string("Bearer ") + token);
    auto stream = conn_.selector->ReportRun(&ctx);
    for (const auto& r : reports) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
    v1::RunAck ack;
    while (stream->Read(&ack)) acks->push_back(ack);
    // Acks may come out of order (a rejection is written at once, a stored run after its commit).
    std::sort(acks->begin(), acks->end(), [](const auto& a, const auto& b) { return a.sequence() < b.sequence(); });
    return stream->Finish();
  }

  std::vector<v1::RunReport> StoredRuns() {
    std::vector<v1::RunReport> runs;
    EXPECT_TRUE(server_->core()
                    .store()
                    ->ScanRuns(0,
                               [&](const v1::RunReport& r) {
                                 runs.push_back(r);
                                 return true;
                               })
                    .ok());
    return runs;
  }

  double CounterValue(const std::string& name) {
    for (const auto& family : server_->core().metrics()->registry().Collect()) {
      if (family.name == name && !family.metric.empty()) return family.metric.front().counter.value;
    }
    return -1;
  }

  std::string dir_;
  std::unique_ptr<server::Server> server_;
  Connection conn_;
};

TEST_F(HostilePeerTest, UnparseableReportEndsTheStreamInvalidArgumentAfterAckingTheOnesBefore) {
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  RawReportStream stream(conn_.channel);
  ASSERT_TRUE(stream.Write(Serialized(MakeReport("p-0", "vllm", 8, 100))));
  ASSERT_TRUE(stream.Write(Serialized(MakeReport("p-1", "vllm", 8, 100))));
  ASSERT_TRUE(stream.Write(Bytes(kGarbage)));
  stream.Write(Serialized(MakeReport("p-3", "vllm", 8, 100)));  // may fail once the server has ended the call
  stream.WritesDone();
  std::vector<v1::RunAck> acks;
  const grpc::Status st = stream.ReadAllAndFinish(&acks);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("report at sequence 2: the bytes did not parse as accelsel.v1.RunReport"));
  ASSERT_EQ(acks.size(), 2u);
  for (const auto& ack : acks) EXPECT_EQ(ack.result(), v1::RunAck::RESULT_DURABLE);
  std::vector<std::string> stored;
  for (const auto& r : StoredRuns()) stored.push_back(r.run_id());
  EXPECT_THAT(stored, ::testing::UnorderedElementsAre("p-0", "p-1"));
}

TEST_F(HostilePeerTest, UnparseableUnaryRequestIsInvalidArgumentNamingTheMessage) {
  for (const char* method :
       {"/accelsel.v1.AcceleratorSelector/SelectAccelerator", "/accelsel.v1.AcceleratorSelector/RegisterStrategy",
        "/accelsel.v1.AcceleratorSelector/ListStrategies", "/accelsel.v1.ModelAdmin/PinModel"}) {
    grpc::ByteBuffer response;
    const grpc::Status st = RawUnary(conn_.channel, method, Bytes(kGarbage), &response);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method << ": " << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("request: the bytes did not parse as accelsel.v1.")) << method;
  }
  // Valid bytes still work through the same path.
  v1::RegisterStrategyRequest req;
  *req.mutable_strategy() = MakeStrategy("vllm");
  grpc::ByteBuffer response;
  ASSERT_TRUE(
      RawUnary(conn_.channel, "/accelsel.v1.AcceleratorSelector/RegisterStrategy", Serialized(req), &response).ok());
  v1::RegisterStrategyResponse resp;
  grpc::ProtoBufferReader reader(&response);
  ASSERT_TRUE(resp.ParseFromZeroCopyStream(&reader));
  EXPECT_TRUE(resp.created());
}

TEST_F(HostilePeerTest, ValuesBeyondFloatRangeAreRejectedWithTheRange) {
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  std::vector<v1::RunAck> acks;
  v1::RunReport huge = MakeReport("f-0", "vllm", 8, 1e308);
  v1::RunReport huge_descriptor = MakeReport("f-1", "vllm", 8, 100);
  huge_descriptor.mutable_context()->mutable_hardware()->set_memory_gb(1e39);
  v1::RunReport huge_extra = MakeReport("f-2", "vllm", 8, 100);
  (*huge_extra.mutable_context()->mutable_extra())["x"] = -1e300;
  ASSERT_TRUE(Report({huge, huge_descriptor, huge_extra, MakeReport("f-3", "vllm", 8, 3e38)}, &acks).ok());
  ASSERT_EQ(acks.size(), 4u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_REJECTED);
  EXPECT_THAT(acks[0].reason(), HasSubstr("metrics.e2e_latency_ms: must be in [0, 3.40282e+38] (got 1e+308)"));
  EXPECT_EQ(acks[1].result(), v1::RunAck::RESULT_REJECTED);
  EXPECT_THAT(acks[1].reason(), HasSubstr("context.hardware.memory_gb: must be in [0, 3.40282e+38]"));
  EXPECT_EQ(acks[2].result(), v1::RunAck::RESULT_REJECTED);
  EXPECT_THAT(acks[2].reason(), HasSubstr("context.extra[\"x\"]: must be in [-3.40282e+38, 3.40282e+38]"));
  EXPECT_EQ(acks[3].result(), v1::RunAck::RESULT_DURABLE);  // large, but a float holds it

  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(8);
  req.mutable_constraints()->set_max_latency_ms(1e308);
  v1::SelectAcceleratorResponse resp;
  const grpc::Status st = conn_.selector->SelectAccelerator(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("constraints.max_latency_ms: must be in [0, 3.40282e+38]"));
}

TEST_F(HostilePeerTest, UnknownFieldsAreDroppedBeforeStoringAndCounted) {
  v1::Strategy strategy = MakeStrategy("vllm");
  strategy.GetReflection()->MutableUnknownFields(&strategy)->AddLengthDelimited(900, std::string(1000, 's'));
  ASSERT_TRUE(Register(strategy).ok());
  // Registering the same definition without the unknown field is the same definition.
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::RegisterStrategyRequest req;
  *req.mutable_strategy() = MakeStrategy("vllm");
  v1::RegisterStrategyResponse resp;
  ASSERT_TRUE(conn_.selector->RegisterStrategy(&ctx, req, &resp).ok());
  EXPECT_FALSE(resp.created());

  v1::RunReport r = MakeReport("u-0", "vllm", 8, 100);
  r.GetReflection()->MutableUnknownFields(&r)->AddLengthDelimited(1000, std::string(60000, 'x'));
  auto* metrics = r.mutable_metrics();
  metrics->GetReflection()->MutableUnknownFields(metrics)->AddVarint(77, 1);
  std::vector<v1::RunAck> acks;
  ASSERT_TRUE(Report({r, MakeReport("u-1", "vllm", 8, 100)}, &acks).ok());
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE);
  const auto runs = StoredRuns();
  ASSERT_EQ(runs.size(), 2u);
  for (const auto& run : runs) {
    EXPECT_TRUE(run.GetReflection()->GetUnknownFields(run).empty()) << run.run_id();
    EXPECT_TRUE(run.metrics().GetReflection()->GetUnknownFields(run.metrics()).empty()) << run.run_id();
    EXPECT_LT(run.ByteSizeLong(), 1000u) << run.run_id();
  }
  EXPECT_EQ(CounterValue("accelsel_unknown_fields_dropped_total"), 2);  // the definition and one report

  grpc::ClientContext list_ctx;
  SetDeadline(&list_ctx);
  v1::ListStrategiesResponse list;
  ASSERT_TRUE(conn_.selector->ListStrategies(&list_ctx, {}, &list).ok());
  ASSERT_EQ(list.strategies_size(), 1);
  EXPECT_TRUE(list.strategies(0).GetReflection()->GetUnknownFields(list.strategies(0)).empty());
}

TEST_F(HostilePeerTest, NodesReferenceStrategiesButOnlyOperatorsCreateThem) {
  StartWithTokens();
  v1::RunReport squat = MakeReport("n-0", "", 8, 100);
  squat.clear_strategy_id();
  *squat.mutable_strategy() = MakeStrategy("squatted");
  std::vector<v1::RunAck> acks;
  ASSERT_TRUE(Report({squat}, &acks, kNodeToken).ok());
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_REJECTED);
  EXPECT_THAT(acks[0].reason(), HasSubstr("strategy: unknown strategy \"squatted\"; only an operator may add"));
  EXPECT_EQ(server_->core().store()->RunCount(), 0u);
  // The operator can still register the id, with its own definition.
  v1::Strategy real = MakeStrategy("squatted");
  real.set_description("the operator's definition");
  ASSERT_TRUE(Register(real, kOperatorToken).ok());
  // A node may attach a definition that is already in the catalogue (it is only a reference then) ...
  v1::RunReport known = squat;
  known.set_run_id("n-1");
  *known.mutable_strategy() = real;
  // ... but not a different one under the same id.
  acks.clear();
  ASSERT_TRUE(Report({known, squat}, &acks, kNodeToken).ok());
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE);
  EXPECT_EQ(acks[1].result(), v1::RunAck::RESULT_REJECTED);
  EXPECT_THAT(acks[1].reason(), HasSubstr("already registered with a different definition"));
  // Operators may create through reports (bulk imports).
  v1::RunReport by_operator = squat;
  by_operator.set_run_id("n-2");
  *by_operator.mutable_strategy() = MakeStrategy("from-import");
  acks.clear();
  ASSERT_TRUE(Report({by_operator}, &acks, kOperatorToken).ok());
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].result(), v1::RunAck::RESULT_DURABLE) << acks[0].reason();
}

TEST_F(HostilePeerTest, StrategyDefinitionsHaveASizeLimit) {
  v1::Strategy big = MakeStrategy("big");
  for (int i = 0; i < 20; ++i) {
    auto* c = big.add_components();
    c->set_method(absl::StrCat("m", i));
    c->set_value(std::string(250, 'v'));
  }
  const grpc::Status st = Register(big);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("strategy: must be at most 4096 bytes serialized"));
}

TEST_F(HostilePeerTest, ListStrategiesIsPaginatedSoNoCatalogueOutgrowsAMessage) {
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(Register(MakeStrategy(absl::StrCat("s", 100 + i))).ok());
  auto list = [&](uint32_t page_size, const std::string& token, v1::ListStrategiesResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::ListStrategiesRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    return conn_.selector->ListStrategies(&ctx, req, resp);
  };
  std::vector<std::string> ids;
  std::vector<int> sizes;
  std::string token;
  do {
    v1::ListStrategiesResponse resp;
    ASSERT_TRUE(list(10, token, &resp).ok());
    sizes.push_back(resp.strategies_size());
    for (const auto& st : resp.strategies()) ids.push_back(st.id());
    token = resp.next_page_token();
  } while (!token.empty());
  EXPECT_THAT(sizes, ::testing::ElementsAre(10, 10, 5));
  ASSERT_EQ(ids.size(), 25u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(ids.front(), "s100");
  // Without a page size: the first 1000, here all, and no next page.
  v1::ListStrategiesResponse all;
  ASSERT_TRUE(list(0, "", &all).ok());
  EXPECT_EQ(all.strategies_size(), 25);
  EXPECT_TRUE(all.next_page_token().empty());
  v1::ListStrategiesResponse bad;
  grpc::Status st = list(1001, "", &bad);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("page_size: must be <= 1000"));
  st = list(10, "not a token", &bad);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("page_token: may contain only"));
}

TEST_F(HostilePeerTest, CompressedRequestsAreRefusedBeforeDecompression) {
  ASSERT_TRUE(Register(MakeStrategy("vllm")).ok());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  v1::SelectAcceleratorRequest req;
  *req.mutable_context() = MakeContext(8);
  req.mutable_context()->mutable_workload()->set_dataset(std::string(200, 'a'));  // compressible
  v1::SelectAcceleratorResponse resp;
  const grpc::Status st = conn_.selector->SelectAccelerator(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("gzip"));
  grpc::ClientContext plain;
  SetDeadline(&plain);
  EXPECT_TRUE(conn_.selector->SelectAccelerator(&plain, req, &resp).ok());
}

TEST(TokenFileTest, RefusesGroupOrWorldWritableFiles) {
  const std::string dir = FreshDir("tokens-mode");
  const std::string path = dir + "/tokens";
  std::ofstream(path) << kOperatorToken << " operator ops-1\n";
  for (mode_t mode : {0666, 0620, 0602}) {
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    auto tokens = server::ReadAuthTokensFile(path);
    ASSERT_FALSE(tokens.ok()) << std::oct << mode;
    EXPECT_EQ(tokens.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(tokens.status().message()), HasSubstr("chmod go-w"));
  }
  for (mode_t mode : {0600, 0640, 0644}) {
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    EXPECT_TRUE(server::ReadAuthTokensFile(path).ok()) << std::oct << mode;
  }
  // The server refuses to start with such a file.
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  auto o = TestOptions(dir);
  o.access.auth_tokens_file = path;
  auto s = server::Server::Start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("writable by everyone"));
}

TEST(TokenFileTest, NodeIdsFollowTheIdRule) {
  const std::string token = "abcdefghijklmnop";
  EXPECT_TRUE(server::ParseAuthTokens(token + " node node-7.eu:a/b\n").ok());
  for (const std::string& bad :
       {std::string("\"quoted\""), std::string("nul\0id", 6), std::string(300, 'n'), std::string("caf\xc3\xa9")}) {
    auto parsed = server::ParseAuthTokens(token + " node " + bad + "\n");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("auth tokens line 1: node id: ")) << bad;
  }
}

}  // namespace
}  // namespace accelsel::testing
