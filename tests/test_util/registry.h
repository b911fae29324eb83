// Test helpers that read series out of a prometheus-cpp registry (server/metrics.h) without HTTP: a family by name,
// a series by its exact label set, and one series' value.
#ifndef ACCELSEL_TESTS_TEST_UTIL_REGISTRY_H_
#define ACCELSEL_TESTS_TEST_UTIL_REGISTRY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "prometheus/metric_family.h"
#include "server/metrics.h"

namespace accelsel::testing {

using Labels = std::map<std::string, std::string>;

inline const prometheus::MetricFamily* FindFamily(const std::vector<prometheus::MetricFamily>& families,
                                                  const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

inline const prometheus::ClientMetric* FindSeries(const prometheus::MetricFamily& family, const Labels& labels) {
  for (const auto& m : family.metric) {
    Labels have;
    for (const auto& l : m.label) have[l.name] = l.value;
    if (have == labels) return &m;
  }
  return nullptr;
}

// The value of one counter or gauge series, or a histogram series' sample count; nullopt if the series does not
// exist.
inline std::optional<double> Value(server::Metrics& metrics, const std::string& name, const Labels& labels = {}) {
  const auto families = metrics.registry().Collect();
  const prometheus::MetricFamily* family = FindFamily(families, name);
  if (family == nullptr) return std::nullopt;
  const prometheus::ClientMetric* series = FindSeries(*family, labels);
  if (series == nullptr) return std::nullopt;
  switch (family->type) {
    case prometheus::MetricType::Gauge: return series->gauge.value;
    case prometheus::MetricType::Histogram: return static_cast<double>(series->histogram.sample_count);
    default: return series->counter.value;
  }
}

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_TEST_UTIL_REGISTRY_H_
