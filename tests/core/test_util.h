// Helpers shared by the core tests: seeded inputs and element-wise comparison with a clear failure message.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"

namespace mlxd::test {

inline array randn(uint64_t seed, const shape_t& shape, dtype t = dtype::f32) {
  return random::normal({seed}, shape, 0.0f, 1.0f, t);
}

// Every element within atol + rtol * |want|; NaN must match NaN and infinities must match exactly.
inline ::testing::AssertionResult close(const array& got, const array& want, double rtol, double atol) {
  if (got.shape() != want.shape()) {
    return ::testing::AssertionFailure() << "shape " << got.to_string() << " vs " << want.to_string();
  }
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    const bool both_nan = std::isnan(g[i]) && std::isnan(w[i]);
    if (both_nan || g[i] == w[i]) continue;
    if (std::isnan(g[i]) || std::isnan(w[i]) || std::isinf(g[i]) || std::isinf(w[i]) ||
        std::fabs(g[i] - w[i]) > atol + rtol * std::fabs(w[i])) {
      return ::testing::AssertionFailure() << "element " << i << ": got " << g[i] << ", want " << w[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// The kernel levels this CPU runs, besides the reference.
inline std::vector<kernel_level> fast_levels() {
  std::vector<kernel_level> out;
  for (auto level :
       {kernel_level::scalar, kernel_level::avx2, kernel_level::avx512, kernel_level::avx512_vnni}) {
    if (level <= best_kernel_level()) out.push_back(level);
  }
  return out;
}

}  // namespace mlxd::test
