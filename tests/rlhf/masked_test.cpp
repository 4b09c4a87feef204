// Masked reductions and whitening against float64 references, including empty masks and NaN at masked
// positions.
#include "mlxd/rlhf/masked.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "grad_check.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "test_util.h"

namespace mlxd::rlhf {
namespace {

using test::f32;
using test::near;

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

TEST(Masked, SumMeanAndTokenMeanIgnoreMaskedValuesEvenNaN) {
  const array x = f32({1, kNan, 3, -kInf, 5, 6}, {2, 3});
  const array m = array::from(std::vector<int32_t>{1, 0, 1, 0, 1, 1}, {2, 3}, dtype::i32);
  EXPECT_TRUE(near(masked_sum(x, m), {15}));
  EXPECT_TRUE(near(masked_sum(x, m, {1}), {4, 11}));
  EXPECT_TRUE(near(masked_mean(x, m, {1}), {2, 5.5}));
  EXPECT_TRUE(near(masked_mean(x, m), {3.75}));
  EXPECT_TRUE(near(token_mean(x, m, 10), {1.5}));
  const auto g = grad([&](const std::vector<array>& v) { return masked_mean(v[0], m); }, {x})[0];
  EXPECT_TRUE(near(g, {0.25, 0, 0.25, 0, 0.25, 0.25}, 0, 0));
}

TEST(Masked, EmptyMasksGiveZeroNotNaN) {
  const array x = f32({1, 2, 3, 4}, {2, 2});
  const array m = f32({0, 0, 0, 1}, {2, 2});
  EXPECT_TRUE(near(masked_mean(x, m, {1}), {0, 4}));
  EXPECT_TRUE(near(masked_mean(x, zeros({2, 2})), {0}));
  EXPECT_TRUE(near(token_mean(x, zeros({2, 2}), 0), {0}));
  EXPECT_THROW(token_mean(x, m, -1), std::invalid_argument);
  EXPECT_THROW(masked_sum(x, zeros({4})), std::invalid_argument);
  EXPECT_THROW(masked_sum(x, f32({1, kNan, 0, 1}, {2, 2})), std::invalid_argument);
}

TEST(LastValid, PicksTheLastValidPositionOfEachRowWithItsGradient) {
  const array x = grad_check::randn({3, 4, 2}, 100);
  const array mask = f32({0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 0}, {3, 4});  // last valid: t = 2, 3, 2
  const std::vector<double> v = x.to_vector<double>();
  EXPECT_TRUE(near(last_valid(x, mask), {v[4], v[5], v[14], v[15], v[20], v[21]}, 0, 0));
  EXPECT_TRUE(grad_check::check_grad(
      [&](const std::vector<array>& a) { return grad_check::weighted_sum(last_valid(a[0], mask)); }, {x}));
  EXPECT_EQ(last_valid(zeros({3, 4}), mask).shape(), (shape_t{3}));
  EXPECT_THROW(last_valid(x, f32({1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, {3, 4})), std::invalid_argument);
  EXPECT_THROW(last_valid(zeros({3}), ones({3, 1})), std::invalid_argument);
}

TEST(Whiten, MatchesFloat64ReferenceOverValidTokens) {
  const std::vector<double> v = {3, kNan, -1, 7, 2.5, 0, 11, -4};
  const std::vector<double> mask = {1, 0, 1, 1, 1, 0, 1, 1};
  double n = 0, s = 0, ss = 0;
  for (size_t i = 0; i < v.size(); ++i) n += mask[i], s += mask[i] ? v[i] : 0;
  const double mu = s / n;
  for (size_t i = 0; i < v.size(); ++i) ss += mask[i] ? (v[i] - mu) * (v[i] - mu) : 0;
  const double sd = std::sqrt(ss / (n - 1) + 1e-8);
  std::vector<double> shifted(v.size(), 0), kept(v.size(), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    if (mask[i]) shifted[i] = (v[i] - mu) / sd, kept[i] = shifted[i] + mu;
  }
  EXPECT_TRUE(near(whiten(f32(v, {2, 4}), f32(mask, {2, 4})), shifted));
  EXPECT_TRUE(near(whiten(f32(v, {2, 4}), f32(mask, {2, 4}), false), kept));
}

TEST(Whiten, EmptyMaskThrowsAndOneTokenGivesZero) {
  EXPECT_THROW(whiten(f32({1, 2}), zeros({2})), std::invalid_argument);
  EXPECT_THROW(whiten(f32({1, 2}), ones({2}), true, 0), std::invalid_argument);
  EXPECT_THROW(whiten(f32({1, kInf}), ones({2})), std::invalid_argument);
  EXPECT_TRUE(near(whiten(f32({5, 9}), f32({0, 1})), {0, 0}, 0, 0));
  EXPECT_TRUE(near(whiten(f32({4, 4, 4}), ones({3})), {0, 0, 0}, 0, 0));  // tied values: 0, not NaN
}

}  // namespace
}  // namespace mlxd::rlhf
