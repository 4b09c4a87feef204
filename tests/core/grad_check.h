// Gradient checking for the autograd tests: analytic gradients from mlxd::grad against central finite
// differences, plus seeded input generators that keep inputs away from non-differentiable points.
//
// The ops compute in f32, so the numeric derivative uses a relatively large step (1e-2 of max(1, |x|)) and
// the actually stored perturbed values as the denominator; the comparison is |num - ana| <= atol + rtol *
// |num|.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"

namespace mlxd::grad_check {

struct options {
  double step = 1e-2;  // central-difference step, relative to max(1, |x|)
  double rtol = 1e-2;
  double atol = 1e-3;
};

// Compares `analytic` (one gradient per input, with the input's shape and dtype) with central differences of
// `f` at `inputs`. Integer and bool inputs are not perturbed; their gradients must be all zero. On failure
// the message names the worst element of every mismatching input.
::testing::AssertionResult matches_numeric(const loss_fn& f, const std::vector<array>& inputs,
                                           const std::vector<array>& analytic, const options& opts = {});

// value_and_grad(f, inputs): the value must equal f(inputs) evaluated without a tape, and the gradients must
// pass matches_numeric.
::testing::AssertionResult check_grad(const loss_fn& f, const std::vector<array>& inputs,
                                      const options& opts = {});

// ---- seeded inputs; `stream` picks an independent draw ----
inline constexpr uint64_t seed = 20240611;

inline random::key key_for(uint64_t stream) {
  return {seed, stream};
}
// N(0, scale^2).
array randn(const shape_t& shape, uint64_t stream, float scale = 1.0f);
// Uniform in [lo, hi).
array randu(const shape_t& shape, uint64_t stream, float lo, float hi);
// Magnitudes uniform in [lo, hi) with random signs: never within lo of 0.
array signed_uniform(const shape_t& shape, uint64_t stream, float lo, float hi);
// `x` (f32) with every value within `margin` of one of `points` pushed out to that distance.
array away_from(const array& x, const std::vector<float>& points, float margin);
// A random permutation of n values spaced `spacing` apart (plus jitter below 0.3 * spacing), centred on 0:
// no two values lie within 0.7 * spacing of each other, so max/min/sort/topk have no near-ties.
array distinct_values(const shape_t& shape, uint64_t stream, float spacing = 0.1f);

// Every kernel level this CPU runs, reference first: tests repeat checks on each.
std::vector<kernel_level> kernel_levels();

// sum(out * w) with w ~ N(0, 1) drawn from `stream`: a scalar that every element of `out` influences.
array weighted_sum(const array& out, uint64_t stream = 1000);

}  // namespace mlxd::grad_check
