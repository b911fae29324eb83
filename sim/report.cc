// Regret scoring and JSON / table output of a simulation; see report.h.
#include "sim/report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/policies.h"

namespace accelsel::sim {
namespace {

using nlohmann::json;

// JSON has no NaN: a figure with no jobs behind it is null.
json Number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

size_t PolicyIndex(const std::string& name) {
  const auto& names = PolicyNames();
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

uint64_t Share(double share, uint64_t jobs) { return static_cast<uint64_t>(share * static_cast<double>(jobs)); }

}  // namespace

Scorer::Scorer(const Network& net, std::vector<std::vector<uint32_t>> choices, const DriverResult& driver)
    : net_(net), choices_(std::move(choices)), driver_(driver) {
  const size_t jobs = net.jobs().size();
  choices_[PolicyIndex("accelsel")].resize(jobs, kNoChoice);
  for (size_t j = 0; j < driver.outcomes.size() && j < jobs; ++j) {
    choices_[PolicyIndex("accelsel")][j] = driver.outcomes[j].choice;
  }
  log_regret_.resize(choices_.size());
  for (size_t p = 0; p < choices_.size(); ++p) {
    log_regret_[p].resize(jobs);
    for (uint64_t j = 0; j < jobs; ++j) {
      log_regret_[p][j] = std::log(net.Regret(net.jobs()[j].task, choices_[p][j], j));
    }
  }
}

bool Scorer::Honest(uint64_t job) const { return !net_.nodes()[net_.jobs()[job].node].liar; }

double Scorer::RegretGeomean(size_t policy, uint64_t begin, uint64_t end, int hardware) const {
  double sum = 0;
  size_t n = 0;
  for (uint64_t j = begin; j < end && j < net_.jobs().size(); ++j) {
    if (!Honest(j)) continue;
    if (hardware >= 0 && static_cast<int>(net_.table().tasks[net_.jobs()[j].task].hardware) != hardware) continue;
    sum += log_regret_[policy][j];
    ++n;
  }
  return n == 0 ? std::nan("") : std::exp(sum / static_cast<double>(n));
}

size_t Scorer::HonestJobs(uint64_t begin, uint64_t end, int hardware) const {
  size_t n = 0;
  for (uint64_t j = begin; j < end && j < net_.jobs().size(); ++j) {
    if (Honest(j) && (hardware < 0 || static_cast<int>(net_.table().tasks[net_.jobs()[j].task].hardware) == hardware)) {
      ++n;
    }
  }
  return n;
}

json Scorer::Segment(uint64_t begin, uint64_t end, int hardware) const {
  json out;
  out["jobs"] = HonestJobs(begin, end, hardware);
  for (size_t p = 0; p < PolicyNames().size(); ++p) {
    out[PolicyNames()[p]]["regret_geomean"] = Number(RegretGeomean(p, begin, end, hardware));
  }
  return out;
}

double Scorer::FavouriteNotBestShare(size_t policy, uint64_t begin, uint64_t end) const {
  const int fav = net_.liar_favourite();
  size_t hits = 0, n = 0;
  for (uint64_t j = begin; j < end && j < net_.jobs().size(); ++j) {
    if (!Honest(j)) continue;
    ++n;
    const uint32_t task = net_.jobs()[j].task;
    if (static_cast<int>(choices_[policy][j]) == fav && net_.TrueValue(task, fav, j) != net_.BestValue(task, j)) {
      ++hits;
    }
  }
  return n == 0 ? std::nan("") : static_cast<double>(hits) / static_cast<double>(n);
}

double Scorer::ExploredShare(uint64_t begin, uint64_t end) const {
  size_t explored = 0, n = 0;
  for (uint64_t j = begin; j < end && j < driver_.outcomes.size(); ++j) {
    if (!Honest(j)) continue;
    ++n;
    explored += driver_.outcomes[j].explored ? 1 : 0;
  }
  return n == 0 ? std::nan("") : static_cast<double>(explored) / static_cast<double>(n);
}

std::vector<json> Scorer::Windows(uint64_t window) const {
  std::vector<json> out;
  const uint64_t jobs = net_.jobs().size();
  size_t sample = 0;
  for (uint64_t begin = 0, w = 0; begin < jobs; begin += window, ++w) {
    const uint64_t end = std::min(jobs, begin + window);
    json o;
    o["window"] = w;
    o["jobs"] = end;
    o["honest_jobs"] = HonestJobs(begin, end, -1);
    for (size_t p = 0; p < PolicyNames().size(); ++p) {
      o["regret_geomean"][PolicyNames()[p]] = Number(RegretGeomean(p, begin, end));
    }
    o["exploration_share"] = Number(ExploredShare(begin, end));
    uint64_t version = 0;
    for (uint64_t j = begin; j < end && j < driver_.outcomes.size(); ++j) {
      version = std::max(version, driver_.outcomes[j].model_version);
    }
    o["model_version"] = version;
    // The server's own figures of its serving model, as last sampled within the window.
    while (sample + 1 < driver_.samples.size() && driver_.samples[sample + 1].jobs_done <= end) ++sample;
    if (!driver_.samples.empty()) {
      const ServerSample& s = driver_.samples[sample];
      json live;
      live["serving_version"] = s.serving_version;
      live["runs_stored"] = s.runs_stored;
      live["holdout_mape"] = s.holdout_mape < 0 ? json(nullptr) : json(s.holdout_mape);
      live["holdout_coverage80"] = s.holdout_coverage80 < 0 ? json(nullptr) : json(s.holdout_coverage80);
      live["holdout_top1"] = s.holdout_top1 < 0 ? json(nullptr) : json(s.holdout_top1);
      o["server"] = live;
      if (s.rss_bytes > 0) o["server_rss_mb"] = static_cast<double>(s.rss_bytes) / (1 << 20);
    }
    if (net_.late_hardware() >= 0) {
      json late;
      late["jobs"] = HonestJobs(begin, end, net_.late_hardware());
      for (size_t p = 0; p < PolicyNames().size(); ++p) {
        late["regret_geomean"][PolicyNames()[p]] = Number(RegretGeomean(p, begin, end, net_.late_hardware()));
      }
      o["late_hardware"] = late;
    }
    if (net_.liar_favourite() >= 0) {
      json liars;
      uint64_t liar_jobs = 0;
      for (uint64_t j = begin; j < end; ++j) liar_jobs += Honest(j) ? 0 : 1;
      liars["liar_jobs"] = liar_jobs;
      liars["favourite_first_not_best"] = Number(FavouriteNotBestShare(PolicyIndex("accelsel"), begin, end));
      o["liars"] = liars;
    }
    if (net_.drift_strategy() >= 0) o["drift_active"] = end > net_.drift_job();
    out.push_back(std::move(o));
  }
  return out;
}

json Scorer::Summary(const json& config, uint64_t window) const {
  const uint64_t jobs = net_.jobs().size();
  const size_t accelsel = PolicyIndex("accelsel");
  json s;
  s["config"] = config;
  s["jobs"] = jobs;
  s["honest_jobs"] = HonestJobs(0, jobs, -1);
  s["whole_run"] = Segment(0, jobs);
  s["after_warmup"] = Segment(Share(kWarmupShare, jobs), jobs);
  s["last_10pct"] = Segment(jobs - Share(kTenthShare, jobs), jobs);
  s["exploration_share"] = {{"whole_run", Number(ExploredShare(0, jobs))},
                            {"after_warmup", Number(ExploredShare(Share(kWarmupShare, jobs), jobs))}};
  if (net_.late_hardware() >= 0) {
    const uint64_t l = net_.late_job();
    json late;
    late["hardware"] = net_.table().hardware[net_.late_hardware()];
    late["joins_at_job"] = l;
    late["first_10pct_after_join"] = Segment(l, l + Share(kTenthShare, jobs), net_.late_hardware());
    late["last_10pct"] = Segment(jobs - Share(kTenthShare, jobs), jobs, net_.late_hardware());
    s["late_hardware"] = late;
  }
  if (net_.liar_favourite() >= 0) {
    json liars;
    liars["nodes"] = net_.scenario().liars;
    liars["factor"] = net_.scenario().liar_factor;
    liars["favourite"] = net_.table().strategies[net_.liar_favourite()].id;
    liars["liar_jobs"] = jobs - HonestJobs(0, jobs, -1);
    json share;
    for (size_t p = 0; p < PolicyNames().size(); ++p) {
      share[PolicyNames()[p]] = Number(FavouriteNotBestShare(p, jobs - Share(kTenthShare, jobs), jobs));
    }
    liars["favourite_first_not_best_last_10pct"] = share;
    s["liars"] = liars;
  }
  if (net_.drift_strategy() >= 0) {
    const uint64_t d = net_.drift_job();
    const uint64_t tenth = Share(kTenthShare, jobs);
    json drift;
    drift["strategy"] = net_.table().strategies[net_.drift_strategy()].id;
    drift["factor"] = net_.scenario().drift_factor;
    drift["at_job"] = d;
    drift["before"] = Segment(d > tenth ? d - tenth : 0, d);
    drift["first_10pct_after"] = Segment(d, d + tenth);
    // Jobs after the drift until a window's accelsel regret is back within 2 % of the 10 % before it.
    const double before = RegretGeomean(accelsel, d > tenth ? d - tenth : 0, d);
    json recovered = nullptr;
    for (uint64_t b = d; b < jobs; b += window) {
      const double r = RegretGeomean(accelsel, b, std::min(jobs, b + window));
      if (std::isfinite(r) && r <= before * 1.02) {
        recovered = std::min(jobs, b + window) - d;
        break;
      }
    }
    drift["accelsel_recovered_within_jobs"] = recovered;
    s["drift"] = drift;
  }
  if (net_.scenario().churn)
    s["churn"] = {{"nodes_left", net_.churned_nodes()}, {"nodes_joined", net_.churned_nodes()}};
  json server;
  server["serving_version"] = driver_.serving_version;
  server["models_in_history"] = driver_.models_in_history;
  server["retrains_requested"] = driver_.retrains;
  s["server"] = server;
  json runs;
  runs["reported"] = driver_.reports_sent;
  runs["acknowledged_durable"] = driver_.acked_durable;
  runs["acknowledged_duplicate"] = driver_.acked_duplicate;
  runs["rejected"] = driver_.rejected;
  runs["unacknowledged"] = driver_.unacknowledged;
  runs["stored_before"] = driver_.runs_stored_before;
  runs["stored_after"] = driver_.runs_stored_after;
  runs["stored_by_this_run"] = driver_.runs_stored_after - driver_.runs_stored_before;
  runs["lost"] = static_cast<int64_t>(driver_.acked_durable) -
                 static_cast<int64_t>(driver_.runs_stored_after - driver_.runs_stored_before);
  runs["select_errors"] = driver_.select_errors;
  s["runs"] = runs;
  // Wall-clock figures: they vary between runs, so they stay out of everything else.
  json load;
  load["warm_seconds"] = driver_.warm_seconds;
  load["jobs_seconds"] = driver_.jobs_seconds;
  load["selects_per_s"] = driver_.jobs_seconds > 0 ? driver_.selects_ok / driver_.jobs_seconds : 0.0;
  load["reports_per_s"] =
      driver_.drain_seconds > 0 ? (driver_.reports_sent - net_.warm_reports().size()) / driver_.drain_seconds : 0.0;
  uint64_t rss_max = 0;
  for (const ServerSample& x : driver_.samples) rss_max = std::max(rss_max, x.rss_bytes);
  if (rss_max > 0) {
    load["server_rss_mb"] = {{"start", driver_.samples.front().rss_bytes / double(1 << 20)},
                             {"max", rss_max / double(1 << 20)},
                             {"end", driver_.samples.back().rss_bytes / double(1 << 20)}};
  }
  s["load"] = load;
  if (!driver_.errors.empty()) s["errors"] = driver_.errors;
  return json{{"summary", s}};
}

std::string HumanSummary(const json& summary) {
  const json& s = summary.at("summary");
  std::string out = absl::StrFormat(
      "%llu jobs (%llu from honest nodes); regret = geometric mean of chosen / best, "
      "1.000 = oracle\n",
      s["jobs"].get<uint64_t>(), s["honest_jobs"].get<uint64_t>());
  auto cell = [](const json& segment, const std::string& policy) {
    const json& v = segment[policy]["regret_geomean"];
    return v.is_null() ? std::string("     -") : absl::StrFormat("%6.3f", v.get<double>());
  };
  std::vector<std::pair<std::string, const json*>> columns = {
      {"whole run", &s["whole_run"]}, {"after 20%", &s["after_warmup"]}, {"last 10%", &s["last_10pct"]}};
  if (s.contains("late_hardware")) {
    columns.push_back({"late hw 1st", &s["late_hardware"]["first_10pct_after_join"]});
    columns.push_back({"late hw last", &s["late_hardware"]["last_10pct"]});
  }
  if (s.contains("drift")) {
    columns.push_back({"pre-drift", &s["drift"]["before"]});
    columns.push_back({"post-drift", &s["drift"]["first_10pct_after"]});
  }
  absl::StrAppend(&out, absl::StrFormat("%-15s", "policy"));
  for (const auto& [name, seg] : columns) absl::StrAppend(&out, absl::StrFormat(" %12s", name));
  absl::StrAppend(&out, "\n");
  for (const std::string& p : PolicyNames()) {
    absl::StrAppend(&out, absl::StrFormat("%-15s", p));
    for (const auto& [name, seg] : columns) absl::StrAppend(&out, absl::StrFormat(" %12s", cell(*seg, p)));
    absl::StrAppend(&out, "\n");
  }
  const json& load = s["load"];
  const json& runs = s["runs"];
  absl::StrAppend(
      &out, absl::StrFormat(
                "exploration share %.3f; serving model v%llu; %.0f selects/s, %.0f reports/s\n",
                s["exploration_share"]["whole_run"].is_null() ? 0.0 : s["exploration_share"]["whole_run"].get<double>(),
                s["server"]["serving_version"].get<uint64_t>(), load["selects_per_s"].get<double>(),
                load["reports_per_s"].get<double>()));
  absl::StrAppend(&out, absl::StrFormat("runs: %llu reported, %llu acknowledged durable, %llu stored by this run, "
                                        "%lld lost\n",
                                        runs["reported"].get<uint64_t>(), runs["acknowledged_durable"].get<uint64_t>(),
                                        runs["stored_by_this_run"].get<uint64_t>(), runs["lost"].get<int64_t>()));
  if (s.contains("drift") && !s["drift"]["accelsel_recovered_within_jobs"].is_null()) {
    absl::StrAppend(&out, absl::StrFormat("drift: accelsel back within 2%% of its pre-drift regret after %llu jobs\n",
                                          s["drift"]["accelsel_recovered_within_jobs"].get<uint64_t>()));
  }
  return out;
}

}  // namespace accelsel::sim
