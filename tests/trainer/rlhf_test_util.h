// Small helpers the RLHF trainer tests share: a step's statistic by name and the largest difference between
// two sets of weights.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "mlxd/core/array.h"

namespace mlxd::trainer::test {

inline double stat(const std::vector<std::pair<std::string, double>>& stats, const std::string& name) {
  for (const auto& [n, v] : stats)
    if (n == name) return v;
  ADD_FAILURE() << "no statistic " << name;
  return NAN;
}

inline bool has_stat(const std::vector<std::pair<std::string, double>>& stats, const std::string& name) {
  return std::any_of(stats.begin(), stats.end(), [&](const auto& s) { return s.first == name; });
}

inline double max_abs_diff(const std::vector<array>& a, const std::vector<array>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = a[i].to_vector<float>(), y = b[i].to_vector<float>();
    for (size_t k = 0; k < x.size(); ++k) m = std::max(m, static_cast<double>(std::abs(x[k] - y[k])));
  }
  return m;
}

}  // namespace mlxd::trainer::test
