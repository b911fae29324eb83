#include "server/cluster_quality.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "util/log.h"

namespace accelsel::server {
namespace {

// Wire format. Request: kRequestTag, the asker's id, '\n', a GetLiveQualityRequest. Answer: the answering replica's
// id, '\n', its GetLiveQualityResponse.
constexpr char kRequestTag[] = "quality\n";
// The others are asked for this many nodes (the most a request may ask for), so that a node whose runs were joined
// on several replicas is merged from all of them before the list is cut to what the caller asked.
constexpr uint32_t kNodesAsked = 1000;

// An average of `value` over the parts, weighted by `weight`; 0 when every weight is 0.
double Weighted(const std::vector<const v1::LiveQuality*>& parts,
                const std::function<double(const v1::LiveQuality&)>& value,
                const std::function<double(const v1::LiveQuality&)>& weight) {
  double sum = 0, total = 0;
  for (const v1::LiveQuality* p : parts) {
    const double w = weight(*p);
    if (w <= 0) continue;
    sum += w * value(*p);
    total += w;
  }
  return total > 0 ? sum / total : 0;
}

// The weight of a part's mean_regret_log: its regret_reports; a replica of an older version leaves that unset, and
// its followed joins (joined x follow_rate) stand in (all of them, though only those with a regret estimate count).
double RegretWeight(const v1::LiveQuality& q) {
  if (q.regret_reports() > 0) return static_cast<double>(q.regret_reports());
  return q.mean_regret_log() != 0 ? static_cast<double>(q.joined_reports()) * q.follow_rate() : 0;
}

}  // namespace

v1::LiveQuality MergeLiveQualityFigures(const std::vector<const v1::LiveQuality*>& parts) {
  v1::LiveQuality out;
  uint64_t decisions = 0, joined = 0, scored = 0, failures = 0, regrets = 0;
  double failures_predicted = 0;
  for (const v1::LiveQuality* p : parts) {
    decisions += p->decisions();
    joined += p->joined_reports();
    scored += p->scored_reports();
    failures += p->failures_seen();
    regrets += p->regret_reports();
    failures_predicted += p->failures_predicted();
  }
  const auto scored_w = [](const v1::LiveQuality& q) { return static_cast<double>(q.scored_reports()); };
  const auto joined_w = [](const v1::LiveQuality& q) { return static_cast<double>(q.joined_reports()); };
  const auto decisions_w = [](const v1::LiveQuality& q) { return static_cast<double>(q.decisions()); };
  out.set_decisions(decisions);
  out.set_joined_reports(joined);
  out.set_scored_reports(scored);
  out.set_failures_seen(failures);
  out.set_regret_reports(regrets);
  out.set_failures_predicted(failures_predicted);
  out.set_mape(Weighted(
      parts, [](const v1::LiveQuality& q) { return q.mape(); }, scored_w));
  out.set_coverage80(Weighted(
      parts, [](const v1::LiveQuality& q) { return q.coverage80(); }, scored_w));
  out.set_follow_rate(Weighted(
      parts, [](const v1::LiveQuality& q) { return q.follow_rate(); }, joined_w));
  out.set_exploration_share(Weighted(
      parts, [](const v1::LiveQuality& q) { return q.exploration_share(); }, decisions_w));
  out.set_mean_regret_log(Weighted(
      parts, [](const v1::LiveQuality& q) { return q.mean_regret_log(); }, RegretWeight));
  return out;
}

v1::GetLiveQualityResponse MergeLiveQuality(const std::vector<v1::GetLiveQualityResponse>& parts, uint32_t top_nodes) {
  v1::GetLiveQualityResponse out;
  if (!parts.empty()) out.set_window_ms(parts.front().window_ms());
  std::vector<const v1::LiveQuality*> overall;
  std::map<uint64_t, std::vector<const v1::VersionLiveQuality*>, std::greater<>> versions;
  std::map<std::string, std::vector<const v1::LiveQuality*>> nodes;
  std::vector<std::string> ids;
  uint32_t replicas = 0;
  for (const v1::GetLiveQualityResponse& p : parts) {
    overall.push_back(&p.overall());
    for (const v1::VersionLiveQuality& v : p.versions()) versions[v.version()].push_back(&v);
    for (const v1::NodeLiveQuality& n : p.nodes()) nodes[n.node_id()].push_back(&n.live());
    if (p.truncated()) out.set_truncated(true);
    if (p.decision_log_enabled()) out.set_decision_log_enabled(true);
    replicas += std::max<uint32_t>(1, p.replicas());
    ids.insert(ids.end(), p.replica_ids().begin(), p.replica_ids().end());
  }
  *out.mutable_overall() = MergeLiveQualityFigures(overall);
  for (const auto& [version, list] : versions) {
    v1::VersionLiveQuality* v = out.add_versions();
    v->set_version(version);
    std::vector<const v1::LiveQuality*> figures;
    for (const v1::VersionLiveQuality* part : list) {
      figures.push_back(&part->live());
      if (!v->has_holdout() && part->has_holdout()) *v->mutable_holdout() = part->holdout();
    }
    *v->mutable_live() = MergeLiveQualityFigures(figures);
  }
  std::vector<v1::NodeLiveQuality> merged;
  merged.reserve(nodes.size());
  for (const auto& [node, list] : nodes) {
    v1::NodeLiveQuality n;
    n.set_node_id(node);
    *n.mutable_live() = MergeLiveQualityFigures(list);
    merged.push_back(std::move(n));
  }
  // The decision log's order: the highest mape first, then by node id.
  std::sort(merged.begin(), merged.end(), [](const v1::NodeLiveQuality& a, const v1::NodeLiveQuality& b) {
    return a.live().mape() != b.live().mape() ? a.live().mape() > b.live().mape() : a.node_id() < b.node_id();
  });
  for (size_t i = 0; i < merged.size() && i < top_nodes; ++i) *out.add_nodes() = std::move(merged[i]);
  out.set_replicas(replicas);
  std::sort(ids.begin(), ids.end());
  for (std::string& id : ids) out.add_replica_ids(std::move(id));
  return out;
}

absl::StatusOr<std::unique_ptr<ClusterQuality>> ClusterQuality::Start(cluster::Coordination* coordination,
                                                                      std::string replica_id, LocalQuality local,
                                                                      absl::Duration gather_window) {
  std::unique_ptr<ClusterQuality> q(
      new ClusterQuality(coordination, std::move(replica_id), std::move(local), gather_window));
  absl::Status st = coordination->ServeBroadcast([self = q.get()](std::string_view request) {
    return self->Handle(absl::string_view(request.data(), request.size()));
  });
  if (!st.ok()) return st;
  return q;
}

ClusterQuality::ClusterQuality(cluster::Coordination* coordination, std::string replica_id, LocalQuality local,
                               absl::Duration gather_window)
    : coordination_(coordination),
      id_(std::move(replica_id)),
      local_(std::move(local)),
      gather_window_(gather_window) {}

ClusterQuality::~ClusterQuality() { Stop(); }

void ClusterQuality::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cancel_.store(true);
  coordination_->StopServingBroadcast();
  // The NATS thread may still be inside Handle, reading the decision log: it ends before the log goes.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &handling_));
}

std::string ClusterQuality::Handle(absl::string_view request) {
  if (!absl::ConsumePrefix(&request, kRequestTag)) return "";  // another kind of broadcast
  const size_t newline = request.find('\n');
  if (newline == absl::string_view::npos) return "";
  // The asker reads its own figures itself.
  if (request.substr(0, newline) == id_) return "";
  v1::GetLiveQualityRequest parsed;
  if (!parsed.ParseFromArray(request.data() + newline + 1, static_cast<int>(request.size() - newline - 1))) return "";
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return "";
    ++handling_;
  }
  v1::GetLiveQualityResponse own;
  const absl::Status st = local_(parsed, &own);
  {
    absl::MutexLock lock(&mu_);
    --handling_;
  }
  if (!st.ok()) {
    log::Warn("cluster_quality_unanswered", {{"replica", id_}, {"error", std::string(st.message())}});
    return "";
  }
  own.set_replicas(1);
  own.clear_replica_ids();
  own.add_replica_ids(id_);
  return absl::StrCat(id_, "\n", own.SerializeAsString());
}

absl::Status ClusterQuality::Quality(const v1::GetLiveQualityRequest& request, v1::GetLiveQualityResponse* response) {
  v1::GetLiveQualityRequest wide = request;
  wide.set_top_nodes(kNodesAsked);
  cluster::GatherOptions gather;
  gather.window = gather_window_;
  {
    absl::MutexLock lock(&mu_);
    gather.enough = peers_seen_;
  }
  // This replica's own figures are read while the others read theirs.
  v1::GetLiveQualityResponse own;
  absl::Status own_status;
  std::thread local([&] { own_status = local_(wide, &own); });
  absl::StatusOr<std::vector<std::string>> answers =
      coordination_->Broadcast(absl::StrCat(kRequestTag, id_, "\n", wide.SerializeAsString()), gather, &cancel_);
  local.join();
  if (!own_status.ok()) return own_status;
  if (absl::IsCancelled(answers.status())) return answers.status();
  own.set_replicas(1);
  own.clear_replica_ids();
  own.add_replica_ids(id_);
  std::vector<v1::GetLiveQualityResponse> parts;
  parts.push_back(std::move(own));
  if (answers.ok()) {
    std::set<std::string, std::less<>> seen = {id_};
    for (const std::string& answer : *answers) {
      const size_t newline = answer.find('\n');
      if (newline == std::string::npos) continue;
      // One answer per replica, should a request reach one twice.
      if (!seen.insert(answer.substr(0, newline)).second) continue;
      v1::GetLiveQualityResponse part;
      if (!part.ParseFromArray(answer.data() + newline + 1, static_cast<int>(answer.size() - newline - 1))) continue;
      parts.push_back(std::move(part));
    }
  } else {
    log::Warn("cluster_quality_local_only", {{"replica", id_}, {"error", std::string(answers.status().message())}});
  }
  {
    absl::MutexLock lock(&mu_);
    peers_seen_ = std::max(peers_seen_, parts.size() - 1);
  }
  *response = MergeLiveQuality(parts, request.top_nodes());
  return absl::OkStatus();
}

}  // namespace accelsel::server
