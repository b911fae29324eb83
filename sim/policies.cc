// The baselines of a simulation; see policies.h.
#include "sim/policies.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <utility>

namespace accelsel::sim {
namespace {

enum PolicyStream : uint64_t { kRandom = 101, kEpsilon = 102 };

// log cost of a value: smaller is better in both directions.
double LogCost(const Network& net, double v) { return net.table().maximize ? -std::log(v) : std::log(v); }

class SingleBest {
 public:
  explicit SingleBest(size_t strategies) : sum_(strategies, 0), n_(strategies, 0) {}
  // One group of values measured for one task (a job's, or a task's warm reports).
  void Observe(const Network& net, const std::vector<std::pair<uint32_t, double>>& group) {
    if (group.size() < 2) return;
    double best = LogCost(net, group.front().second);
    for (const auto& [s, v] : group) best = std::min(best, LogCost(net, v));
    for (const auto& [s, v] : group) {
      sum_[s] += LogCost(net, v) - best;
      n_[s] += 1;
    }
  }
  // The known strategy among `present` with the least mean log ratio; `fallback` when none is known.
  uint32_t Choose(const std::vector<uint32_t>& present, uint32_t fallback) const {
    int best = -1;
    for (uint32_t s : present) {
      if (n_[s] == 0) continue;
      if (best < 0 || sum_[s] / n_[s] < sum_[best] / n_[best]) best = static_cast<int>(s);
    }
    return best < 0 ? fallback : static_cast<uint32_t>(best);
  }

 private:
  std::vector<double> sum_;
  std::vector<double> n_;
};

class EpsilonGreedy {
 public:
  EpsilonGreedy(size_t tasks, double epsilon, std::mt19937_64 rng)
      : cells_(tasks), epsilon_(epsilon), rng_(std::move(rng)) {}
  uint32_t Choose(uint32_t task, const std::vector<uint32_t>& candidates) {
    const bool explore = std::uniform_real_distribution<double>(0, 1)(rng_) < epsilon_;
    const uint32_t any = candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng_)];
    if (explore) return any;
    int best = -1;
    double best_mean = 0;
    for (uint32_t s : candidates) {
      auto it = cells_[task].find(s);
      if (it == cells_[task].end()) continue;
      const double mean = it->second.first / it->second.second;
      if (!std::isfinite(mean)) continue;
      if (best < 0 || mean < best_mean) {
        best = static_cast<int>(s);
        best_mean = mean;
      }
    }
    return best < 0 ? any : static_cast<uint32_t>(best);
  }
  // `log_cost` infinite = NOT_APPLICABLE there: never chosen greedily again.
  void Observe(uint32_t task, uint32_t strategy, double log_cost) {
    auto& cell = cells_[task][strategy];
    cell.first += log_cost;
    cell.second += 1;
  }

 private:
  std::vector<std::map<uint32_t, std::pair<double, double>>> cells_;  // task -> strategy -> (sum, n)
  double epsilon_;
  std::mt19937_64 rng_;
};

}  // namespace

std::vector<std::vector<uint32_t>> RunBaselines(const Network& net, const BaselineOptions& options) {
  const SimTable& table = net.table();
  const auto& names = PolicyNames();
  std::vector<std::vector<uint32_t>> out(names.size());
  auto column = [&](const std::string& name) -> std::vector<uint32_t>& {
    return out[std::find(names.begin(), names.end(), name) - names.begin()];
  };
  std::vector<uint32_t>& oracle = column("oracle");
  std::vector<uint32_t>& sbs = column("sbs");
  std::vector<uint32_t>& eps = column("epsilon_greedy");
  std::vector<uint32_t>& fixed = column("default");
  std::vector<uint32_t>& random = column("random");

  // Default: strategies by how many tasks have them (most first; ties by id).
  std::vector<size_t> count(table.strategies.size(), 0);
  for (const SimTask& t : table.tasks) {
    for (uint32_t s : t.present) ++count[s];
  }
  std::vector<uint32_t> by_commonness(table.strategies.size());
  std::iota(by_commonness.begin(), by_commonness.end(), 0);
  std::stable_sort(by_commonness.begin(), by_commonness.end(),
                   [&](uint32_t a, uint32_t b) { return count[a] > count[b]; });
  auto default_for = [&](uint32_t task) {
    for (uint32_t s : by_commonness) {
      if (table.tasks[task].Has(s)) return s;
    }
    return table.tasks[task].present.front();
  };

  std::vector<uint32_t> all(table.strategies.size());
  std::iota(all.begin(), all.end(), 0);
  SingleBest single_best(table.strategies.size());
  EpsilonGreedy greedy(table.tasks.size(), options.epsilon, StreamRng(net.scenario().seed, kEpsilon));
  std::mt19937_64 random_rng = StreamRng(net.scenario().seed, kRandom);

  std::map<uint32_t, std::vector<std::pair<uint32_t, double>>> warm_groups;
  for (size_t i = 0; i < net.warm_reports().size(); ++i) {
    const WarmReport& w = net.warm_reports()[i];
    const double v = net.WarmMeasured(i);
    warm_groups[w.task].push_back({w.strategy, v});
    greedy.Observe(w.task, w.strategy, LogCost(net, v));
  }
  for (const auto& [task, group] : warm_groups) single_best.Observe(net, group);

  const size_t jobs = net.jobs().size();
  for (auto* v : {&oracle, &sbs, &eps, &fixed, &random}) v->reserve(jobs);
  std::vector<std::pair<uint32_t, double>> group;
  for (uint64_t j = 0; j < jobs; ++j) {
    const uint32_t task = net.jobs()[j].task;
    const SimTask& t = table.tasks[task];
    const std::vector<uint32_t>& candidates = options.all_candidates ? all : t.present;

    uint32_t best = t.present.front();
    for (uint32_t s : t.present) {
      if (net.Better(net.TrueValue(task, s, j), net.TrueValue(task, best, j))) best = s;
    }
    oracle.push_back(best);
    fixed.push_back(default_for(task));
    sbs.push_back(single_best.Choose(t.present, fixed.back()));
    random.push_back(candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(random_rng)]);
    const uint32_t e = greedy.Choose(task, candidates);
    eps.push_back(e);

    greedy.Observe(task, e, t.Has(e) ? LogCost(net, net.Reported(j, task, e)) : HUGE_VAL);
    group.clear();
    for (uint32_t s : t.present) group.push_back({s, net.Reported(j, task, s)});
    single_best.Observe(net, group);
  }
  return out;
}

}  // namespace accelsel::sim
