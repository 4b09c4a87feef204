// Helpers of the RLHF tests: arrays from and to double vectors, elementwise comparison with a float64
// reference, and finiteness checks.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "mlxd/core/array.h"

namespace mlxd::rlhf::test {

inline array f32(const std::vector<double>& v, const shape_t& shape) {
  return array::from(v, shape, dtype::f32);
}
inline array f32(const std::vector<double>& v) {
  return array::from(v, {static_cast<int64_t>(v.size())}, dtype::f32);
}
inline std::vector<double> values(const array& a) {
  return a.to_vector<double>();
}

// |got - want| <= atol + rtol |want| everywhere (infinities must match exactly); names the worst element.
inline ::testing::AssertionResult near(const array& got, const std::vector<double>& want, double rtol = 1e-5,
                                       double atol = 1e-6) {
  const std::vector<double> g = got.to_vector<double>();
  if (g.size() != want.size()) {
    return ::testing::AssertionFailure()
           << got.to_string() << " has " << g.size() << " values, want " << want.size();
  }
  for (size_t i = 0; i < g.size(); ++i) {
    const bool ok =
        std::isinf(want[i]) ? g[i] == want[i] : std::fabs(g[i] - want[i]) <= atol + rtol * std::fabs(want[i]);
    if (!ok)
      return ::testing::AssertionFailure() << "element " << i << ": got " << g[i] << ", want " << want[i];
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult all_finite(const array& a) {
  const std::vector<double> v = a.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]))
      return ::testing::AssertionFailure() << "element " << i << " of " << a.to_string() << " is " << v[i];
  }
  return ::testing::AssertionSuccess();
}

}  // namespace mlxd::rlhf::test
