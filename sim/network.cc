// Nodes, job sequence, truth and measurements of a simulated network; see network.h.
#include "sim/network.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace accelsel::sim {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Independent generators for the separate decisions of Build, so that adding (say) liars does not change which
// tasks the honest nodes run.
enum Stream : uint64_t { kJobs = 1, kLiars = 2, kChurn = 3, kWarm = 4, kNoise = 5, kWarmNoise = 6, kFavourite = 7 };
std::mt19937_64 Rng(uint64_t seed, Stream stream) { return StreamRng(seed, stream); }

std::string NodeId(size_t i, size_t width) {
  std::string n = std::to_string(i + 1);
  if (n.size() < width) n.insert(0, width - n.size(), '0');
  return "sim-node-" + n;
}

absl::Status FractionError(const std::string& flag, const std::string& text, const char* rule) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " '", text, "': ", rule));
}

bool ParseOpenFraction(absl::string_view text, double* out) {
  return absl::SimpleAtod(text, out) && *out > 0 && *out < 1;
}

}  // namespace

std::mt19937_64 StreamRng(uint64_t seed, uint64_t stream) { return std::mt19937_64(SplitMix64(seed * 1024 + stream)); }

absl::Status ParseLateHardware(const std::string& text, Scenario* scenario) {
  const size_t at = text.rfind('@');
  if (at == std::string::npos || at == 0) {
    return FractionError("late-hardware", text, "wants NAME@FRACTION, e.g. \"AMD MI300X GPU@0.5\"");
  }
  double f = 0;
  if (!ParseOpenFraction(text.substr(at + 1), &f)) {
    return FractionError("late-hardware", text, "FRACTION must be a number in (0, 1)");
  }
  scenario->late_hardware = text.substr(0, at);
  scenario->late_fraction = f;
  return absl::OkStatus();
}

absl::Status ParseDrift(const std::string& text, Scenario* scenario) {
  const size_t at = text.rfind('@');
  if (at == std::string::npos || at == 0) {
    return FractionError("drift", text, "wants STRATEGY@FRACTIONxFACTOR, e.g. vllm@0.5x3");
  }
  const std::string rest = text.substr(at + 1);
  size_t times = rest.find("\xc3\x97");  // U+00D7 MULTIPLICATION SIGN in UTF-8
  size_t times_len = 2;
  if (times == std::string::npos) {
    times = rest.find_first_of("xX*");
    times_len = 1;
  }
  if (times == std::string::npos) {
    return FractionError("drift", text, "wants STRATEGY@FRACTIONxFACTOR, e.g. vllm@0.5x3");
  }
  double f = 0, factor = 0;
  if (!ParseOpenFraction(rest.substr(0, times), &f)) {
    return FractionError("drift", text, "FRACTION must be a number in (0, 1)");
  }
  if (!absl::SimpleAtod(rest.substr(times + times_len), &factor) || !(factor > 0) || !std::isfinite(factor)) {
    return FractionError("drift", text, "FACTOR must be a positive number");
  }
  scenario->drift_strategy = text.substr(0, at);
  scenario->drift_fraction = f;
  scenario->drift_factor = factor;
  return absl::OkStatus();
}

absl::StatusOr<Network> Network::Build(const SimTable& table, const Scenario& scenario) {
  Network net(table, scenario);
  const size_t hw_count = table.hardware.size();
  if (scenario.jobs < 1) return absl::InvalidArgumentError("--jobs must be >= 1");
  if (scenario.nodes < hw_count) {
    return absl::InvalidArgumentError(absl::StrCat("--nodes must be at least the table's number of hardware (",
                                                   hw_count, ") so that every hardware has a node"));
  }
  if (scenario.liars >= scenario.nodes) return absl::InvalidArgumentError("--liars must be below --nodes");
  net.late_job_ = scenario.jobs;
  net.drift_job_ = scenario.jobs;
  if (!scenario.late_hardware.empty()) {
    net.late_hardware_ = table.HardwareIndex(scenario.late_hardware);
    if (net.late_hardware_ < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--late-hardware: '", scenario.late_hardware,
                                                     "' is not a hardware of the table (",
                                                     absl::StrJoin(table.hardware, ", "), ")"));
    }
    if (hw_count < 2) return absl::InvalidArgumentError("--late-hardware needs a table with two or more hardware");
    net.late_job_ = static_cast<uint64_t>(scenario.late_fraction * static_cast<double>(scenario.jobs));
  }
  if (!scenario.drift_strategy.empty()) {
    net.drift_strategy_ = table.StrategyIndex(scenario.drift_strategy);
    if (net.drift_strategy_ < 0) {
      std::vector<std::string> ids;
      for (const auto& s : table.strategies) ids.push_back(s.id);
      return absl::InvalidArgumentError(absl::StrCat(
          "--drift: '", scenario.drift_strategy, "' is not a strategy of the table (", absl::StrJoin(ids, ", "), ")"));
    }
    net.drift_job_ = static_cast<uint64_t>(scenario.drift_fraction * static_cast<double>(scenario.jobs));
  }

  // Nodes per hardware in proportion to its tasks (largest remainder), at least one each.
  std::vector<std::vector<uint32_t>> tasks_of(hw_count);
  for (uint32_t t = 0; t < table.tasks.size(); ++t) tasks_of[table.tasks[t].hardware].push_back(t);
  std::vector<uint32_t> per_hw(hw_count, 1);
  const uint32_t spare = scenario.nodes - static_cast<uint32_t>(hw_count);
  std::vector<std::pair<double, uint32_t>> remainders;
  uint32_t given = 0;
  for (uint32_t h = 0; h < hw_count; ++h) {
    const double share = static_cast<double>(spare) * tasks_of[h].size() / table.tasks.size();
    per_hw[h] += static_cast<uint32_t>(share);
    given += static_cast<uint32_t>(share);
    remainders.push_back({share - std::floor(share), h});
  }
  std::sort(remainders.begin(), remainders.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  for (uint32_t i = 0; given < spare; ++i, ++given) ++per_hw[remainders[i % hw_count].second];

  // Node ids are numbered across the whole run (churned-in nodes continue the numbering).
  const uint64_t churn_joins =
      scenario.churn ? static_cast<uint64_t>(std::ceil(kChurnShare * scenario.nodes)) * kChurnEvents : 0;
  const size_t width = std::max<size_t>(4, std::to_string(scenario.nodes + churn_joins).size());
  for (uint32_t h = 0; h < hw_count; ++h) {
    for (uint32_t i = 0; i < per_hw[h]; ++i) {
      SimNode node;
      node.id = NodeId(net.nodes_.size(), width);
      node.hardware = h;
      node.joins_at = static_cast<int>(h) == net.late_hardware_ ? net.late_job_ : 0;
      net.nodes_.push_back(std::move(node));
    }
  }
  if (scenario.liars > 0) {
    std::mt19937_64 rng = Rng(scenario.seed, kLiars);
    std::vector<uint32_t> order(net.nodes_.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (uint32_t i = 0; i < scenario.liars; ++i) net.nodes_[order[i]].liar = true;
    std::mt19937_64 pick = Rng(scenario.seed, kFavourite);
    net.liar_favourite_ = static_cast<int>(pick() % table.strategies.size());
  }

  // Churn: at each event a tenth of the honest nodes present leave and as many new ones of the same hardware join.
  std::vector<uint64_t> events;
  if (scenario.churn) {
    std::mt19937_64 rng = Rng(scenario.seed, kChurn);
    for (int k = 1; k < kChurnEvents; ++k) {
      const uint64_t at = scenario.jobs * k / kChurnEvents;
      std::vector<uint32_t> present;
      for (uint32_t n = 0; n < net.nodes_.size(); ++n) {
        const SimNode& node = net.nodes_[n];
        if (!node.liar && node.joins_at <= at && node.leaves_at > at) present.push_back(n);
      }
      std::shuffle(present.begin(), present.end(), rng);
      const size_t leave = static_cast<size_t>(std::ceil(kChurnShare * present.size()));
      for (size_t i = 0; i < leave && i < present.size(); ++i) {
        net.nodes_[present[i]].leaves_at = at;
        SimNode fresh;
        fresh.id = NodeId(net.nodes_.size(), width);
        fresh.hardware = net.nodes_[present[i]].hardware;
        fresh.joins_at = at;
        net.nodes_.push_back(std::move(fresh));
        ++net.churned_;
      }
      events.push_back(at);
    }
  }
  if (net.late_hardware_ >= 0) events.push_back(net.late_job_);
  std::sort(events.begin(), events.end());

  // Jobs: a node drawn by its rate among the nodes present, then one of its hardware's tasks.
  std::mt19937_64 rng = Rng(scenario.seed, kJobs);
  std::vector<double> cumulative;
  std::vector<uint32_t> present;
  auto rebuild = [&](uint64_t job) {
    cumulative.clear();
    present.clear();
    double sum = 0;
    for (uint32_t n = 0; n < net.nodes_.size(); ++n) {
      const SimNode& node = net.nodes_[n];
      if (node.joins_at > job || node.leaves_at <= job) continue;
      sum += node.liar ? kLiarRateMultiple : 1.0;
      cumulative.push_back(sum);
      present.push_back(n);
    }
  };
  rebuild(0);
  size_t next_event = 0;
  net.jobs_.reserve(scenario.jobs);
  for (uint64_t j = 0; j < scenario.jobs; ++j) {
    bool changed = false;
    while (next_event < events.size() && events[next_event] <= j) {
      ++next_event;
      changed = true;
    }
    if (changed) rebuild(j);
    const double u = std::uniform_real_distribution<double>(0, cumulative.back())(rng);
    const size_t k = std::min<size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin(),
                                      present.size() - 1);
    const uint32_t node = present[k];
    const auto& tasks = tasks_of[net.nodes_[node].hardware];
    net.jobs_.push_back({node, tasks[std::uniform_int_distribution<size_t>(0, tasks.size() - 1)(rng)]});
  }

  // Warm start: a share of the cells, each reported by an honest node of its hardware present from the start.
  if (scenario.warm_fraction > 0) {
    std::vector<std::vector<uint32_t>> reporters(hw_count);
    for (uint32_t n = 0; n < net.nodes_.size(); ++n) {
      const SimNode& node = net.nodes_[n];
      if (!node.liar && node.joins_at == 0) reporters[node.hardware].push_back(n);
    }
    std::vector<WarmReport> cells;
    for (uint32_t t = 0; t < table.tasks.size(); ++t) {
      const uint32_t h = table.tasks[t].hardware;
      if (static_cast<int>(h) == net.late_hardware_ || reporters[h].empty()) continue;
      for (uint32_t s : table.tasks[t].present) cells.push_back({t, s, 0});
    }
    std::mt19937_64 warm_rng = Rng(scenario.seed, kWarm);
    std::shuffle(cells.begin(), cells.end(), warm_rng);
    cells.resize(static_cast<size_t>(std::llround(scenario.warm_fraction * cells.size())));
    std::vector<size_t> turn(hw_count, 0);
    for (WarmReport& w : cells) {
      const auto& r = reporters[table.tasks[w.task].hardware];
      w.node = r[turn[table.tasks[w.task].hardware]++ % r.size()];
    }
    net.warm_ = std::move(cells);
  }

  net.worst_.resize(table.tasks.size());
  for (uint32_t t = 0; t < table.tasks.size(); ++t) {
    double worst = table.tasks[t].value[table.tasks[t].present.front()];
    for (uint32_t s : table.tasks[t].present) {
      if (net.Better(worst, table.tasks[t].value[s])) worst = table.tasks[t].value[s];
    }
    net.worst_[t] = worst;
  }
  return net;
}

double Network::TrueValue(uint32_t task, uint32_t strategy, uint64_t job) const {
  double v = table_->tasks[task].value[strategy];
  if (static_cast<int>(strategy) == drift_strategy_ && job >= drift_job_) {
    v = table_->maximize ? v / scenario_.drift_factor : v * scenario_.drift_factor;
  }
  return v;
}

double Network::BestValue(uint32_t task, uint64_t job) const {
  const SimTask& t = table_->tasks[task];
  double best = TrueValue(task, t.present.front(), job);
  for (uint32_t s : t.present) {
    const double v = TrueValue(task, s, job);
    if (Better(v, best)) best = v;
  }
  return best;
}

double Network::Regret(uint32_t task, uint32_t strategy, uint64_t job) const {
  const double best = BestValue(task, job);
  double v = strategy < table_->strategies.size() ? TrueValue(task, strategy, job) : model::kMissing;
  if (model::IsMissing(v)) v = worst_[task];
  return table_->maximize ? best / v : v / best;
}

double Network::Noise(uint64_t stream, uint64_t a, uint64_t b) const {
  const uint64_t h = SplitMix64(SplitMix64(SplitMix64(scenario_.seed * 1024 + stream) ^ a) ^ (b * 0x9e37ULL));
  // Box-Muller from two 53-bit uniforms in (0, 1].
  const double u1 = (static_cast<double>(h >> 11) + 1) * 0x1.0p-53;
  const double u2 = static_cast<double>(SplitMix64(h) >> 11) * 0x1.0p-53;
  const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  return std::exp(scenario_.noise * z);
}

double Network::Measured(uint64_t job, uint32_t task, uint32_t strategy) const {
  return TrueValue(task, strategy, job) * Noise(kNoise, job, strategy);
}

double Network::Reported(uint64_t job, uint32_t task, uint32_t strategy) const {
  double v = Measured(job, task, strategy);
  if (nodes_[jobs_[job].node].liar && static_cast<int>(strategy) != liar_favourite_) {
    v = table_->maximize ? v / scenario_.liar_factor : v * scenario_.liar_factor;
  }
  return v;
}

double Network::WarmMeasured(size_t i) const {
  const WarmReport& w = warm_[i];
  return table_->tasks[w.task].value[w.strategy] * Noise(kWarmNoise, i, w.strategy);
}

}  // namespace accelsel::sim
