// ServiceCore: request handling independent of the transport.
#include "server/service_core.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "model/context_key.h"
#include "proto/convert.h"
#include "server/descriptor_fill.h"
#include "server/grpc_status.h"
#include "server/model_manager.h"
#include "server/seed.h"
#include "server/stats_rebuild.h"
#include "server/training_set.h"
#include "storage/rocksdb_store.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/status_macros.h"

namespace accelsel::server {
namespace {

// Store meta key of the quarantined node ids, one per line.
constexpr char kQuarantinedNodesKey[] = "quarantined_nodes";

constexpr uint32_t kDefaultQualityNodes = 10;

absl::Status ValidateQualityRequest(const v1::GetLiveQualityRequest& request) {
  constexpr int64_t kMaxWindowMs = int64_t{30} * 24 * 3600 * 1000;
  constexpr uint32_t kMaxNodes = 1000;
  if (request.window_ms() < 0 || request.window_ms() > kMaxWindowMs) {
    return InvalidField("window_ms", absl::StrCat("must be in [0, ", kMaxWindowMs, "] (30 days; 0 = one hour), got ",
                                                  request.window_ms()));
  }
  if (request.top_nodes() > kMaxNodes) {
    return InvalidField("top_nodes", absl::StrCat("must be <= ", kMaxNodes, " (0 = 10), got ", request.top_nodes()));
  }
  return absl::OkStatus();
}

std::mt19937_64& ThreadRng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

// The metrics label for a rejection: the top-level field the broken rule is about ("metrics" for
// "metrics.ttft_ms: must be finite"). A fixed, small label set (see Metrics::kRejectReasons).
std::string ReasonLabel(const absl::Status& st) {
  absl::string_view msg = st.message();
  const size_t end = msg.find_first_of(".:[ ");
  return std::string(msg.substr(0, end == absl::string_view::npos ? msg.size() : end));
}

}  // namespace

ServiceCore::ServiceCore(const ServerOptions& options, Metrics* metrics)
    : options_(options),
      metrics_(metrics),
      stats_([&] {
        model::ObservedStatsOptions o;
        o.vouched_nodes.insert(o.vouched_nodes.end(), options.vouched_nodes.begin(), options.vouched_nodes.end());
        return o;
      }()),
      selector_(model::SelectorOptions{.exploration_rate = options.exploration_rate, .interval_coverage = 0.8}) {}

ServiceCore::~ServiceCore() { Shutdown(); }

absl::StatusOr<std::unique_ptr<ServiceCore>> ServiceCore::Create(const ServerOptions& options, Metrics* metrics) {
  std::unique_ptr<ServiceCore> core(new ServiceCore(options, metrics));
  if (absl::Status st = core->Init(); !st.ok()) return st;
  return core;
}

absl::Status ServiceCore::Init() {
  storage::StoreOptions so;
  so.path = options_.data_dir;
  so.sync_writes = options_.sync_writes;
  // The trainer's first pass reads these instead of the runs (server/training_set.h). A store written before them
  // gets them on this open: one pass over its runs.
  UseTrainingSummaries(&so);
  auto store = options_.storage_env == nullptr ? storage::TelemetryStore::Open(so)
                                               : storage::OpenRocksDbStore(so, options_.storage_env);
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  catalog_ = std::make_unique<Catalog>(store_.get());
  if (absl::Status st = catalog_->Load(); !st.ok()) return st;
  if (absl::Status st = LoadDescriptors(); !st.ok()) return st;
  ingest_ = std::make_unique<IngestQueue>(
      store_.get(), IngestOptions{},
      [this](const std::vector<const v1::RunReport*>& stored, const std::vector<const model::RunRecord*>& records) {
        OnStored(stored, records);
      });
  if (store_->RunCount() == 0 && !options_.seed_csv.empty()) {
    if (absl::Status st = Seed(); !st.ok()) return st;
  }
  // Rebuild the observed statistics from the store: they are a cache of it, never a second source of truth.
  {
    const absl::Time start = absl::Now();
    const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
    absl::StatusOr<uint64_t> added = RebuildObservedStats(*store_, threads, &stats_);
    if (!added.ok()) return added.status();
    log::Info("observed_stats_rebuilt", {{"runs", *added},
                                         {"threads", static_cast<uint64_t>(threads)},
                                         {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  }
  {
    // Quarantined nodes first: the trainer's first retrain must already leave them out.
    auto stored = store_->GetMeta(kQuarantinedNodesKey);
    if (!stored.ok()) return stored.status();
    absl::MutexLock lock(&quarantine_mu_);
    if (stored->has_value()) {
      for (absl::string_view id : absl::StrSplit(**stored, '\n', absl::SkipEmpty())) quarantined_.emplace(id);
    }
    ApplyQuarantineLocked(quarantined_);
  }
  // Started once, here: the admin calls that block and the phases of every retrain run on it.
  executor_ = std::make_unique<Executor>(ExecutorOptions{.training_nice = options_.trainer_nice});
  models_ = std::make_unique<ModelManager>(store_.get(), metrics_, options_, executor_.get(), &stats_);
  if (absl::Status st = models_->Load(); !st.ok()) return st;
  DecisionLog::Hooks hooks;
  hooks.holdout = [this](uint64_t version) -> std::optional<v1::ModelEvaluation> {
    if (auto serving = models_->Serving(); serving != nullptr && serving->info.version() == version) {
      return serving->info.evaluation();
    }
    auto list = store_->ListModels();
    if (!list.ok()) return std::nullopt;
    for (const auto& info : *list) {
      if (info.version() == version) return info.evaluation();
    }
    return std::nullopt;
  };
  hooks.serving_version = [this] {
    auto serving = models_->Serving();
    return serving != nullptr ? serving->info.version() : uint64_t{0};
  };
  hooks.on_drift = [this](uint64_t version, double window_mape, double holdout_mape) {
    log::Warn("drift_wakeup", {{"version", version},
                               {"window_mape", window_mape},
                               {"holdout_mape", holdout_mape},
                               {"ratio", holdout_mape > 0 ? window_mape / holdout_mape : 0.0},
                               {"window", static_cast<uint64_t>(options_.decision_log.drift_window)}});
    models_->WakeTrainer();
  };
  const bool cluster_mode = !options_.cluster.nats.servers.empty();
  if (cluster_mode) {
    // One id for the trainer lease, the decisions this replica logs and its log lines.
    if (options_.cluster.replica_id.empty()) options_.cluster.replica_id = DefaultReplicaId();
    options_.decision_log.replica_id = options_.cluster.replica_id;
    options_.decision_log.join_wait = options_.cluster.decision_join_wait;
    hooks.on_logged = [this](std::vector<std::pair<std::string, std::string>> decisions) {
      if (ClusterDecisions* out = decisions_out_.load(std::memory_order_acquire); out != nullptr) {
        out->Publish(std::move(decisions));
      }
    };
  }
  decision_log_ = std::make_unique<DecisionLog>(store_.get(), metrics_, options_.decision_log, std::move(hooks));
  if (cluster_mode) {
    // Last: the applier feeds OnStored, which reads the statistics, the decision log and the model manager.
    auto cluster = ClusterIngest::Start(
        options_.cluster, store_.get(), metrics_,
        [this](const std::vector<const v1::RunReport*>& stored, const std::vector<const model::RunRecord*>& records) {
          OnStored(stored, records);
        });
    if (!cluster.ok()) return cluster.status();
    cluster_ = *std::move(cluster);
    auto models =
        ClusterModels::Start(options_.cluster, options_.trainer_enabled, store_.get(), models_.get(), metrics_);
    if (!models.ok()) return models.status();
    cluster_models_ = *std::move(models);
    ClusterSettings::Appliers appliers;
    appliers.strategy = [this](const v1::Strategy& s) { ApplyReplicatedStrategy(s); };
    appliers.quarantine = [this](const std::string& node_id, bool quarantined) {
      ApplyReplicatedQuarantine(node_id, quarantined);
    };
    // Returns once the cluster's catalogue and quarantine list are applied: a new replica serves them from the start.
    auto settings = ClusterSettings::Start(options_.cluster, std::move(appliers));
    if (!settings.ok()) return settings.status();
    cluster_settings_ = *std::move(settings);
    if (decision_log_->enabled()) {
      auto decisions = ClusterDecisions::Start(options_.cluster, options_.decision_log, options_.cluster.replica_id,
                                               store_.get(), decision_log_.get(), metrics_);
      if (!decisions.ok()) return decisions.status();
      cluster_decisions_ = *std::move(decisions);
      decisions_out_.store(cluster_decisions_.get(), std::memory_order_release);
    }
    std::set<std::string> quarantined;
    {
      absl::MutexLock lock(&quarantine_mu_);
      quarantined = quarantined_;
    }
    auto brought = cluster_settings_->PublishAbsent(catalog_->Get()->protos, quarantined);
    if (brought.ok()) {
      if (*brought > 0) log::Info("cluster_settings_brought", {{"items", static_cast<uint64_t>(*brought)}});
    } else {
      // Not fatal: the replica serves the cluster's settings; what it alone holds stays local until set again.
      log::Warn("cluster_settings_not_brought", {{"error", std::string(brought.status().message())}});
    }
  }
  metrics_->runs_stored().Set(static_cast<double>(store_->RunCount()));
  metrics_->storage_bytes().Set(static_cast<double>(store_->ApproximateBytes()));
  metrics_->strategies().Set(static_cast<double>(catalog_->Get()->protos.size()));
  metrics_->exploration_rate().Set(options_.exploration_rate);
  if (options_.run_retention > absl::ZeroDuration()) {
    retention_ = std::make_unique<RunRetention>(
        store_.get(), RetentionOptions{.max_age = options_.run_retention, .interval = options_.run_retention_interval},
        [this](uint64_t deleted, const absl::Status& status) {
          if (!status.ok()) {
            log::Warn("retention_failed", {{"deleted", deleted}, {"error", std::string(status.message())}});
            return;
          }
          if (deleted == 0) return;
          metrics_->runs_expired().Increment(static_cast<double>(deleted));
          metrics_->runs_stored().Set(static_cast<double>(store_->RunCount()));
          log::Info("retention", {{"deleted", deleted},
                                  {"runs_stored", store_->RunCount()},
                                  {"older_than_s", absl::ToInt64Seconds(options_.run_retention)}});
        });
    retention_->Start();
  }
  return absl::OkStatus();
}

absl::Status ServiceCore::LoadDescriptors() {
  // The default folder is relative to the working directory, which a server started elsewhere (tests, a bare binary)
  // does not have: without tables contexts are simply not filled. Tables that are there but broken stop the start,
  // as they would stop a seed import.
  const std::filesystem::path dir = options_.descriptors_dir;
  std::error_code ec;
  if (dir.empty() ||
      (!std::filesystem::exists(dir / "models.csv", ec) && !std::filesystem::exists(dir / "accelerators.csv", ec))) {
    return absl::OkStatus();
  }
  auto tables = datasets::LoadDescriptorTables(options_.descriptors_dir);
  if (!tables.ok()) {
    return absl::Status(tables.status().code(), absl::StrCat("--descriptors_dir: ", tables.status().message()));
  }
  descriptors_ = *std::move(tables);
  return absl::OkStatus();
}

absl::Status ServiceCore::Seed() {
  // The rows go to the store in one write (a crash never leaves half a seed, which a restart would not redo), so
  // progress is told by phase: parsed, then stored. On a terminal (util/progress.h: stderr a TTY, or
  // ACCELSEL_PROGRESS=1) each phase also draws a line on stderr, ended before the next log line so that the two
  // never share a line; piped, the log lines are all there is.
  const absl::Time start = absl::Now();
  log::Info("seed_start", {{"csv", options_.seed_csv}, {"descriptors_dir", options_.descriptors_dir}});
  absl::StatusOr<SeedData> seed;
  {
    Progress parsing("seed parse", 0);
    parsing.StartTicker();
    seed = LoadSeed(options_.seed_csv, options_.descriptors_dir);
    if (!seed.ok()) {
      parsing.Fail();
      return seed.status();
    }
    parsing.Finish();
  }
  log::Info("seed_progress", {{"phase", "parsed"},
                              {"rows", seed->reports.size()},
                              {"strategies", seed->strategies.size()},
                              {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  // A strategy the catalogue already defines keeps its definition and the seed's rows refer to it by id: a table
  // gives a strategy only {engine: id}, while an operator may have registered the whole definition first (a node's
  // catalogue, docs/NODE.md), which the node's own reports carry and must match.
  size_t kept = 0;
  for (const v1::Strategy& s : seed->strategies) {
    auto created = catalog_->Register(s);
    if (absl::IsAlreadyExists(created.status())) {
      ++kept;
      continue;
    }
    if (!created.ok()) return created.status();
  }
  std::vector<const v1::RunReport*> ptrs;
  ptrs.reserve(seed->reports.size());
  for (const v1::RunReport& r : seed->reports) ptrs.push_back(&r);
  absl::StatusOr<std::vector<storage::AppendResult>> results;
  {
    // One write: the count goes from none to all when it is durable, the timer shows it is under way.
    std::atomic<int64_t> written{0};
    Progress storing("seed store", static_cast<int64_t>(ptrs.size()));
    storing.StartTicker([&written] { return written.load(); });
    results = store_->AppendRuns(ptrs);
    if (!results.ok()) {
      storing.Fail();
      return results.status();
    }
    written = static_cast<int64_t>(ptrs.size());
    storing.Finish();
  }
  const auto stored = std::count(results->begin(), results->end(), storage::AppendResult::kStored);
  log::Info("seed_done", {{"rows", seed->reports.size()},
                          {"stored", stored},
                          {"duplicates", results->size() - static_cast<size_t>(stored)},
                          {"strategies_kept", kept},
                          {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  return absl::OkStatus();
}

void ServiceCore::Ingest(IngestSink* sink, std::unique_ptr<v1::RunReport> report, uint64_t sequence,
                         std::unique_ptr<ConvertedRun> spare) {
  if (cluster_ != nullptr) {
    cluster_->Submit(sink, std::move(report), sequence);
    return;
  }
  if (spare == nullptr) spare = std::make_unique<ConvertedRun>();
  spare->record = FromProto(*report);
  spare->summary = TrainingSummaryOfRecord(spare->record);
  if (!report->SerializeToString(&spare->bytes)) spare->bytes.clear();  // the store then tries, and says why not
  ingest_->Submit(sink, std::move(report), sequence, std::move(spare));
}

void ServiceCore::OnStored(const std::vector<const v1::RunReport*>& stored,
                           const std::vector<const model::RunRecord*>& records) {
  for (size_t i = 0; i < stored.size(); ++i) {
    const v1::RunReport& r = *stored[i];
    const bool suspect = i < records.size() && records[i] != nullptr ? stats_.AddChecked(*records[i]).suspect
                                                                     : stats_.AddChecked(FromProto(r)).suspect;
    if (suspect) metrics_->SuspectReport(r.node_id());
  }
  if (decision_log_ != nullptr) decision_log_->RecordOutcomes(stored);
  metrics_->RunsIngested(static_cast<double>(stored.size()));
  metrics_->runs_stored().Set(static_cast<double>(store_->RunCount()));
  if (models_) models_->NoteNewRuns(stored.size());
}

absl::Status ServiceCore::PrepareReport(v1::RunReport* report, std::string* reason, bool may_create_strategy) {
  absl::Status st = ValidateRunReport(*report, options_.limits);
  if (st.ok()) {
    if (report->has_strategy() && !may_create_strategy && catalog_->Get()->Find(report->strategy().id()) == nullptr) {
      // Creating catalogue entries is an operator's right: a node could otherwise squat ids with wrong
      // definitions or flood the catalogue every caller lists and selects from.
      st = absl::PermissionDeniedError(absl::StrCat(
          "strategy: unknown strategy \"", report->strategy().id(),
          "\"; only an operator may add a strategy to the catalogue (RegisterStrategy, or a report sent with an "
          "operator token)"));
    } else if (report->has_strategy()) {
      auto created = catalog_->Register(report->strategy());
      if (created.ok()) {
        if (*created) metrics_->strategies().Set(static_cast<double>(catalog_->Get()->protos.size()));
        // Cluster mode: the run goes to every replica, so its strategy must too (skipped when already there).
        if (cluster_settings_ != nullptr) st = PublishStrategyState(report->strategy().id());
        report->set_strategy_id(report->strategy().id());
        report->clear_strategy();  // the catalogue holds the definition; the run refers to it by id
      } else {
        st = created.status();
      }
    } else if (catalog_->Get()->Find(report->strategy_id()) == nullptr) {
      st = InvalidField("strategy_id", absl::StrCat("unknown strategy \"", report->strategy_id(),
                                                    "\"; register it first or attach its definition in `strategy`"));
    }
  }
  if (!st.ok()) {
    *reason = ReasonLabel(st);
    return st;
  }
  // The run is stored with the descriptors a selection of the same context would be ranked with, so that both land
  // in one context (weight_dtype is part of its identity) and the model trains on the features it predicts from.
  std::vector<std::string_view> filled;
  FillDescriptors(descriptors_, report->context(), report->mutable_context(), &filled);
  if (report->time_unix_ms() == 0) report->set_time_unix_ms(absl::ToUnixMillis(absl::Now()));
  report->set_schema_version(1);
  return absl::OkStatus();
}

absl::Status ServiceCore::Select(const v1::SelectAcceleratorRequest& request, v1::SelectAcceleratorResponse* response,
                                 const std::string& caller) {
  ACCELSEL_RETURN_IF_ERROR(ValidateSelectRequest(request, options_.limits));
  const auto catalog = catalog_->Get();
  model::SelectQuery query;
  if (request.candidate_ids().empty()) {
    for (size_t i = 0; i < catalog->strategies.size(); ++i) {
      if (!catalog->protos[i].retired()) query.candidates.push_back(&catalog->strategies[i]);
    }
  } else {
    for (int i = 0; i < request.candidate_ids_size(); ++i) {
      const model::Strategy* s = catalog->Find(request.candidate_ids(i));
      if (s == nullptr) {
        return InvalidField(
            absl::StrCat("candidate_ids[", i, "]"),
            absl::StrCat("unknown strategy \"", request.candidate_ids(i), "\" (ListStrategies shows the catalogue)"));
      }
      // Refused rather than skipped: a caller that names its candidates learns at once that one is withdrawn,
      // instead of silently getting a ranking without it.
      if (catalog->IsRetired(request.candidate_ids(i))) {
        return absl::FailedPreconditionError(
            absl::StrCat("candidate_ids[", i, "]: strategy \"", request.candidate_ids(i),
                         "\" is retired by an operator; leave it out, or UnretireStrategy "
                         "restores it"));
      }
      query.candidates.push_back(s);
    }
  }
  if (query.candidates.empty()) {
    return absl::FailedPreconditionError(
        catalog->strategies.empty() ? "the strategy catalogue is empty: register strategies or report runs first"
                                    : "every strategy of the catalogue is retired: register or unretire one first");
  }
  // The caller's context with its unset descriptors filled by name (a copy only when something was filled): ranked,
  // logged and answered as one.
  v1::TaskContext filled_context;
  std::vector<std::string_view> filled;
  const v1::TaskContext& proto_context =
      FillDescriptors(descriptors_, request.context(), &filled_context, &filled) ? filled_context : request.context();
  const model::TaskContext context = FromProto(proto_context);
  query.context = &context;
  query.objective = FromProto(request.objective());
  query.top_k = request.top_k();
  query.allow_exploration = request.allow_exploration();
  const auto& c = request.constraints();
  if (c.has_max_latency_ms()) query.constraints.max_latency_ms = c.max_latency_ms();
  if (c.has_max_cost()) query.constraints.max_cost = c.max_cost();
  if (c.has_max_memory_gb()) query.constraints.max_memory_gb = c.max_memory_gb();
  if (c.has_max_failure_probability()) query.constraints.max_failure_probability = c.max_failure_probability();
  query.constraints.exclude_lossy = c.exclude_lossy();

  const auto serving = models_->Serving();
  const model::Predictor* predictor = serving ? serving->model.get() : nullptr;
  std::vector<model::Recommendation> recs;
  if (options_.seed == 0) {
    recs = selector_.Select(query, stats_, predictor, ThreadRng());
  } else {
    const uint64_t n = seeded_selects_.fetch_add(1, std::memory_order_relaxed);
    std::seed_seq seq{static_cast<uint32_t>(options_.seed), static_cast<uint32_t>(options_.seed >> 32),
                      static_cast<uint32_t>(n), static_cast<uint32_t>(n >> 32)};
    std::mt19937_64 rng(seq);
    recs = selector_.Select(query, stats_, predictor, rng);
  }

  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  response->set_decision_id(MakeDecisionId(now_ms, ThreadRng()()));
  response->set_model_version(serving ? serving->info.version() : 0);
  response->set_objective(ToProto(query.objective));
  for (std::string_view path : filled) response->add_filled_fields(std::string(path));
  for (const auto& r : recs) {
    auto* out = response->add_recommendations();
    *out->mutable_strategy() = catalog->protos[catalog->index.at(r.strategy->id)];
    ToProto(r, selector_.options().interval_coverage, out);
  }
  if (!recs.empty()) metrics_->RecordSelection(recs.front().layer, recs.front().explored);
  if (!recs.empty() && decision_log_->enabled()) {
    LogDecision(request, *response, recs, proto_context, context, caller, now_ms);
  }
  return absl::OkStatus();
}

void ServiceCore::LogDecision(const v1::SelectAcceleratorRequest& request,
                              const v1::SelectAcceleratorResponse& response,
                              const std::vector<model::Recommendation>& recs, const v1::TaskContext& proto_context,
                              const model::TaskContext& context, const std::string& caller, int64_t now_ms) {
  DecisionRecord r;
  r.decision_id = response.decision_id();
  r.time_unix_ms = now_ms;
  r.node_id = caller;
  r.model_version = response.model_version();
  r.context_key = model::ContextKey(context);
  r.objective = response.objective();
  r.replica_id = options_.decision_log.replica_id;
  r.context = &proto_context;
  if (request.has_constraints()) r.constraints = &request.constraints();
  r.candidates = recs;
  decision_log_->RecordDecision(std::make_unique<DecisionEvent>(r));
}

absl::Status ServiceCore::GetLiveQuality(const v1::GetLiveQualityRequest& request,
                                         v1::GetLiveQualityResponse* response) {
  ACCELSEL_RETURN_IF_ERROR(ValidateQualityRequest(request));
  const absl::Duration window = request.window_ms() == 0 ? absl::Hours(1) : absl::Milliseconds(request.window_ms());
  ACCELSEL_RETURN_IF_ERROR(
      decision_log_->Quality(window, request.top_nodes() == 0 ? kDefaultQualityNodes : request.top_nodes(), response));
  // Cluster mode: Quality named the replicas whose decisions the window holds.
  if (options_.cluster.nats.servers.empty()) response->set_replicas(1);
  return absl::OkStatus();
}

absl::Status ServiceCore::ListStrategies(const v1::ListStrategiesRequest& request,
                                         v1::ListStrategiesResponse* response) {
  // Pages of at most 1000 definitions of at most max_strategy_bytes each stay under the 8 MiB message cap.
  constexpr uint32_t kMaxPage = 1000;
  if (request.page_size() > kMaxPage) {
    return InvalidField("page_size", absl::StrCat("must be <= ", kMaxPage, " (got ", request.page_size(), ")"));
  }
  if (!request.page_token().empty()) {
    ACCELSEL_RETURN_IF_ERROR(ValidateId("page_token", request.page_token(), options_.limits));
  }
  const uint32_t page = request.page_size() == 0 ? kMaxPage : request.page_size();
  const auto catalog = catalog_->Get();
  // The token is the last id of the previous page: the next page starts after it, wherever strategies were added.
  auto it = request.page_token().empty()
                ? catalog->protos.begin()
                : std::upper_bound(catalog->protos.begin(), catalog->protos.end(), request.page_token(),
                                   [](const std::string& id, const v1::Strategy& s) { return id < s.id(); });
  const auto listed = [&](const v1::Strategy& s) { return request.include_retired() || !s.retired(); };
  for (; it != catalog->protos.end() && static_cast<uint32_t>(response->strategies_size()) < page; ++it) {
    if (listed(*it)) *response->add_strategies() = *it;
  }
  it = std::find_if(it, catalog->protos.end(), listed);
  if (it != catalog->protos.end()) response->set_next_page_token(response->strategies().rbegin()->id());
  return absl::OkStatus();
}

absl::Status ServiceCore::RegisterStrategy(const v1::RegisterStrategyRequest& request,
                                           v1::RegisterStrategyResponse* response) {
  if (!request.has_strategy()) return InvalidField("strategy", "is required");
  ACCELSEL_RETURN_IF_ERROR(ValidateStrategy("strategy", request.strategy(), options_.limits));
  auto created = catalog_->Register(request.strategy());
  if (!created.ok()) return created.status();
  metrics_->strategies().Set(static_cast<double>(catalog_->Get()->protos.size()));
  if (cluster_settings_ != nullptr) ACCELSEL_RETURN_IF_ERROR(PublishStrategyState(request.strategy().id()));
  *response->mutable_strategy() = request.strategy();
  response->set_created(*created);
  return absl::OkStatus();
}

absl::Status ServiceCore::SetStrategyRetired(const std::string& id, bool retired, v1::Strategy* strategy,
                                             bool* changed) {
  ACCELSEL_RETURN_IF_ERROR(ValidateId("id", id, options_.limits));
  auto result = catalog_->SetRetired(id, retired, strategy);
  if (!result.ok()) return result.status();
  *changed = *result;
  if (cluster_settings_ != nullptr) ACCELSEL_RETURN_IF_ERROR(cluster_settings_->PublishStrategy(*strategy));
  return absl::OkStatus();
}

absl::Status ServiceCore::PublishStrategyState(const std::string& id) {
  const auto catalog = catalog_->Get();
  auto it = catalog->index.find(id);
  if (it == catalog->index.end()) return absl::InternalError(absl::StrCat("strategy \"", id, "\" vanished"));
  return cluster_settings_->PublishStrategy(catalog->protos[it->second]);
}

void ServiceCore::ApplyReplicatedStrategy(const v1::Strategy& strategy) {
  auto changed = catalog_->Apply(strategy);
  if (!changed.ok()) {
    log::Error("cluster_strategy_not_applied",
               {{"id", strategy.id()}, {"error", std::string(changed.status().message())}});
    return;
  }
  if (!*changed) return;
  metrics_->strategies().Set(static_cast<double>(catalog_->Get()->protos.size()));
  log::Info("cluster_strategy_applied", {{"id", strategy.id()}, {"retired", strategy.retired()}});
}

void ServiceCore::ApplyReplicatedQuarantine(const std::string& node_id, bool quarantined) {
  absl::MutexLock lock(&quarantine_mu_);
  std::set<std::string> next = quarantined_;
  const bool changed = quarantined ? next.insert(node_id).second : next.erase(node_id) > 0;
  if (!changed) return;
  if (absl::Status st = SetQuarantinedLocked(std::move(next)); !st.ok()) {
    log::Error("cluster_quarantine_not_applied", {{"node_id", node_id}, {"error", std::string(st.message())}});
    return;
  }
  log::Info("cluster_quarantine_applied", {{"node_id", node_id}, {"quarantined", quarantined}});
}

absl::Status ServiceCore::GetModelInfo(v1::GetModelInfoResponse* response) {
  models_->FillInfo(response);
  response->set_runs_stored(store_->RunCount());
  response->set_strategies(catalog_->Get()->protos.size());
  return absl::OkStatus();
}

absl::Status ServiceCore::Retrain(v1::RetrainResponse* response) {
  auto info = cluster_models_ ? cluster_models_->Retrain() : models_->RetrainNow();
  if (!info.ok()) return info.status();
  *response->mutable_candidate() = *info;
  return absl::OkStatus();
}

void ServiceCore::ApplyQuarantineLocked(const std::set<std::string>& nodes) {
  absl::flat_hash_set<uint64_t> hashes;
  for (const std::string& id : nodes) hashes.insert(model::ObservedStats::NodeHash(id));
  stats_.SetQuarantined(std::move(hashes));
}

absl::Status ServiceCore::SetQuarantinedLocked(std::set<std::string> next) {
  ACCELSEL_RETURN_IF_ERROR(store_->PutMeta(kQuarantinedNodesKey, absl::StrJoin(next, "\n")));
  quarantined_ = std::move(next);
  ApplyQuarantineLocked(quarantined_);
  return absl::OkStatus();
}

absl::Status ServiceCore::QuarantineNode(const v1::QuarantineNodeRequest& request,
                                         v1::QuarantineNodeResponse* response) {
  if (!request.node_id().empty()) {
    ACCELSEL_RETURN_IF_ERROR(ValidateId("node_id", request.node_id(), options_.limits));
  }
  absl::MutexLock lock(&quarantine_mu_);
  std::set<std::string> next = quarantined_;
  bool changed = false;
  if (!request.node_id().empty()) {
    changed = request.release() ? next.erase(request.node_id()) > 0 : next.insert(request.node_id()).second;
  }
  if (changed) ACCELSEL_RETURN_IF_ERROR(SetQuarantinedLocked(std::move(next)));
  if (cluster_settings_ != nullptr && !request.node_id().empty()) {
    // Under quarantine_mu_: this replica's calls reach the bucket in the order they changed the list here.
    ACCELSEL_RETURN_IF_ERROR(cluster_settings_->PublishQuarantine(request.node_id(), !request.release()));
  }
  response->set_changed(changed);
  for (const std::string& id : quarantined_) response->add_quarantined(id);
  return absl::OkStatus();
}

absl::Status ServiceCore::PinModel(const v1::PinModelRequest& request, v1::PinModelResponse* response) {
  auto v = cluster_models_ ? cluster_models_->Pin(request.version()) : models_->Pin(request.version());
  if (!v.ok()) return v.status();
  response->set_serving_version(*v);
  return absl::OkStatus();
}

absl::Status ServiceCore::RollbackModel(v1::RollbackModelResponse* response) {
  auto v = cluster_models_ ? cluster_models_->Rollback() : models_->Rollback();
  if (!v.ok()) return v.status();
  response->set_serving_version(*v);
  return absl::OkStatus();
}

bool ServiceCore::BeginWorker() {
  absl::MutexLock lock(&workers_mu_);
  if (refuse_workers_) return false;
  ++workers_;
  return true;
}

void ServiceCore::EndWorker() {
  absl::MutexLock lock(&workers_mu_);
  --workers_;
}

absl::Status ServiceCore::Backup(const v1::BackupRequest& request, v1::BackupResponse* response) {
  if (options_.backup_dir.empty()) {
    return absl::FailedPreconditionError("backups are off: start the server with --backup_dir=FOLDER");
  }
  if (request.dir().empty()) return InvalidField("dir", "required");
  const std::filesystem::path asked(request.dir());
  for (const std::filesystem::path& part : asked) {
    if (part == "..") return InvalidField("dir", "must not contain a \"..\" component");
  }
  std::error_code ec;
  const std::filesystem::path root = std::filesystem::absolute(options_.backup_dir, ec).lexically_normal();
  if (ec) return absl::InternalError(absl::StrCat("--backup_dir ", options_.backup_dir, ": ", ec.message()));
  const std::filesystem::path target = (asked.is_absolute() ? asked : root / asked).lexically_normal();
  const std::filesystem::path inside = target.lexically_relative(root);
  if (inside.empty() || inside == "." || *inside.begin() == "..") {
    return InvalidField(
        "dir", absl::StrCat("must name a new folder inside --backup_dir ", root.string(), ", got ", request.dir()));
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<uint64_t> runs = store_->Checkpoint(target.string());
  if (!runs.ok()) {
    log::Warn("backup_failed", {{"dir", target.string()}, {"error", std::string(runs.status().message())}});
    return runs.status();
  }
  response->set_dir(target.string());
  response->set_runs(*runs);
  response->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  log::Info("backup", {{"dir", target.string()}, {"runs", *runs}, {"seconds", response->seconds()}});
  return absl::OkStatus();
}

void ServiceCore::Shutdown() {
  if (shut_down_.exchange(true)) return;
  if (models_) models_->CancelTraining();  // a running retrain (trainer or Retrain RPC) ends at its next round
  if (cluster_models_) cluster_models_->CancelCalls();  // and a forwarded one stops waiting for the trainer
  {
    absl::MutexLock lock(&workers_mu_);
    refuse_workers_ = true;
    workers_mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &workers_));
  }
  if (cluster_settings_) cluster_settings_->Stop();  // no replicated change is applied from here on
  if (retention_) retention_->Stop();
  if (cluster_models_) cluster_models_->Stop();  // hands the trainer lease on before the trainer stops
  if (models_) models_->Stop();
  if (executor_) executor_->Shutdown();  // idle by now: the admin jobs ended with their worker slots
  if (ingest_) ingest_->Stop();
  if (cluster_) cluster_->Stop();
  // Before the log (its applier hands decisions to the log), once the log handed over what it holds.
  if (cluster_decisions_) {
    decision_log_->Flush();
    cluster_decisions_->Stop();
  }
  if (decision_log_) decision_log_->Stop();  // after ingest: it writes the joins of the last stored runs
  if (store_) (void)store_->Flush();
}

}  // namespace accelsel::server
