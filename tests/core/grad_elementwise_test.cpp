// Finite-difference checks of the elementwise vjps: unary functions, broadcasting binary ops, where and clip.
#include <functional>
#include <string>

#include "grad_check.h"

namespace mlxd {
namespace {

using grad_check::check_grad;
using grad_check::randn;
using grad_check::randu;
using grad_check::signed_uniform;
using grad_check::weighted_sum;
using unary_op = std::function<array(const array&)>;
using binary_op = std::function<array(const array&, const array&)>;

struct unary_case {
  std::string name;
  unary_op op;
  std::function<array(const shape_t&, uint64_t)> input;  // a draw inside the op's smooth domain
};

std::vector<unary_case> unary_cases() {
  auto normal = [](float scale) {
    return [scale](const shape_t& s, uint64_t stream) { return randn(s, stream, scale); };
  };
  auto positive = [](const shape_t& s, uint64_t stream) { return randu(s, stream, 0.5f, 2.0f); };
  auto nonzero = [](const shape_t& s, uint64_t stream) { return signed_uniform(s, stream, 0.1f, 2.0f); };
  return {
      {"neg", [](const array& a) { return neg(a); }, normal(1.0f)},
      {"operator-", [](const array& a) { return -a; }, normal(1.0f)},
      {"abs", [](const array& a) { return abs(a); }, nonzero},
      {"exp", [](const array& a) { return exp(a); }, normal(1.0f)},
      {"expm1", [](const array& a) { return expm1(a); }, normal(1.0f)},
      {"log", [](const array& a) { return log(a); }, positive},
      {"sqrt", [](const array& a) { return sqrt(a); }, positive},
      {"rsqrt", [](const array& a) { return rsqrt(a); }, positive},
      {"tanh", [](const array& a) { return tanh(a); }, normal(1.5f)},
      {"sigmoid", [](const array& a) { return sigmoid(a); }, normal(2.0f)},
      {"silu", [](const array& a) { return silu(a); }, normal(2.0f)},
      {"gelu", [](const array& a) { return gelu(a); }, normal(2.0f)},
      {"gelu_erf", [](const array& a) { return gelu_erf(a); }, normal(2.0f)},
      {"softplus", [](const array& a) { return softplus(a); }, normal(3.0f)},
      {"log_sigmoid", [](const array& a) { return log_sigmoid(a); }, normal(3.0f)},
      {"square", [](const array& a) { return square(a); }, normal(1.0f)},
  };
}

// [5, 37]: full SIMD vectors and a tail at every kernel level.
TEST(GradElementwise, UnaryOpsMatchFiniteDifferences) {
  for (kernel_level level : grad_check::kernel_levels()) {
    kernel_level_guard guard(level);
    uint64_t stream = 0;
    for (const unary_case& c : unary_cases()) {
      SCOPED_TRACE(c.name + " at kernel level " + std::string(kernel_level_name(level)));
      const unary_op op = c.op;
      EXPECT_TRUE(check_grad([op](const std::vector<array>& v) { return weighted_sum(op(v[0])); },
                             {c.input({5, 37}, ++stream)}));
    }
  }
}

TEST(GradElementwise, UnaryOpsOnTransposedAndSlicedViews) {
  uint64_t stream = 100;
  for (const unary_case& c : unary_cases()) {
    SCOPED_TRACE(c.name);
    const unary_op op = c.op;
    EXPECT_TRUE(check_grad([op](const std::vector<array>& v) { return weighted_sum(op(transpose(v[0]))); },
                           {c.input({5, 3}, ++stream)}));
    EXPECT_TRUE(check_grad(
        [op](const std::vector<array>& v) {
          return weighted_sum(op(slice(v[0], {1, 0}, {6, 4}, {2, 3})));
        },
        {c.input({6, 4}, ++stream)}));
  }
}

struct binary_case {
  std::string name;
  binary_op op;
  // Inputs for shapes (a, b) inside the op's smooth domain.
  std::function<std::vector<array>(const shape_t&, const shape_t&, uint64_t)> inputs;
};

// The broadcast pairs every binary op is checked on, including 0-d scalars on either side.
const std::vector<std::pair<shape_t, shape_t>>& broadcast_pairs() {
  static const std::vector<std::pair<shape_t, shape_t>> pairs = {
      {{3, 4}, {3, 4}},    {{3, 4}, {4}}, {{4}, {3, 4}}, {{2, 1, 4}, {3, 1}},
      {{3, 1}, {2, 1, 4}}, {{}, {3, 4}},  {{3, 4}, {}},  {{}, {}},
  };
  return pairs;
}

// a and b whose elements all differ by at least 0.07 (no ties for maximum/minimum under perturbation).
std::vector<array> distinct_pair(const shape_t& sa, const shape_t& sb, uint64_t stream) {
  const int64_t na = shape_size(sa), nb = shape_size(sb);
  const std::vector<float> v = grad_check::distinct_values({na + nb}, stream).to_vector<float>();
  return {array::from(std::vector<float>(v.begin(), v.begin() + na), sa, dtype::f32),
          array::from(std::vector<float>(v.begin() + na, v.end()), sb, dtype::f32)};
}

std::vector<binary_case> binary_cases() {
  auto normals = [](const shape_t& sa, const shape_t& sb, uint64_t s) {
    return std::vector<array>{randn(sa, s), randn(sb, s + 5000)};
  };
  auto nonzero_b = [](const shape_t& sa, const shape_t& sb, uint64_t s) {
    return std::vector<array>{randn(sa, s), signed_uniform(sb, s + 5000, 0.5f, 2.0f)};
  };
  auto positive_a = [](const shape_t& sa, const shape_t& sb, uint64_t s) {
    return std::vector<array>{randu(sa, s, 0.5f, 2.0f), randn(sb, s + 5000, 0.8f)};
  };
  return {
      {"add", [](const array& a, const array& b) { return add(a, b); }, normals},
      {"operator+", [](const array& a, const array& b) { return a + b; }, normals},
      {"subtract", [](const array& a, const array& b) { return subtract(a, b); }, normals},
      {"operator-", [](const array& a, const array& b) { return a - b; }, normals},
      {"multiply", [](const array& a, const array& b) { return multiply(a, b); }, normals},
      {"operator*", [](const array& a, const array& b) { return a * b; }, normals},
      {"divide", [](const array& a, const array& b) { return divide(a, b); }, nonzero_b},
      {"operator/", [](const array& a, const array& b) { return a / b; }, nonzero_b},
      {"power", [](const array& a, const array& b) { return power(a, b); }, positive_a},
      {"maximum", [](const array& a, const array& b) { return maximum(a, b); }, distinct_pair},
      {"minimum", [](const array& a, const array& b) { return minimum(a, b); }, distinct_pair},
  };
}

TEST(GradElementwise, BinaryOpsWithBroadcasting) {
  uint64_t stream = 200;
  for (const binary_case& c : binary_cases()) {
    const binary_op op = c.op;
    for (const auto& [sa, sb] : broadcast_pairs()) {
      SCOPED_TRACE(c.name + " " + shape_to_string(sa) + " with " + shape_to_string(sb));
      EXPECT_TRUE(check_grad([op](const std::vector<array>& v) { return weighted_sum(op(v[0], v[1])); },
                             c.inputs(sa, sb, ++stream)));
    }
  }
}

TEST(GradElementwise, BinaryOpsOnTransposedOperands) {
  uint64_t stream = 300;
  for (const binary_case& c : binary_cases()) {
    SCOPED_TRACE(c.name);
    const binary_op op = c.op;
    // a: [4, 3] seen as [3, 4]; b: [4, 1] seen as [1, 4] and broadcast over the rows.
    EXPECT_TRUE(check_grad(
        [op](const std::vector<array>& v) { return weighted_sum(op(transpose(v[0]), transpose(v[1]))); },
        c.inputs({4, 3}, {4, 1}, ++stream)));
  }
}

TEST(GradElementwise, PowerWithScalarExponentLeaf) {
  const array base = randu({2, 3}, 1, 0.5f, 2.0f);
  const array exponent = array(1.7f);
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(power(v[0], v[1])); },
                         {base, exponent}));
}

TEST(GradElementwise, PowerOfNegativeBaseWithIntegerExponent) {
  // x^3 and x^-2 are smooth for negative x; the exponent is a constant, so log(x) < 0 must not leak NaN.
  const array x = signed_uniform({3, 4}, 1, 0.5f, 2.0f);
  EXPECT_TRUE(
      check_grad([](const std::vector<array>& v) { return weighted_sum(power(v[0], array(3.0f))); }, {x}));
  EXPECT_TRUE(
      check_grad([](const std::vector<array>& v) { return weighted_sum(power(v[0], array(-2.0f))); }, {x}));
}

TEST(GradElementwise, MaximumMinimumRouteToTheLargerAndSmaller) {
  const array a = array::from({1.0f, -2.0f, 3.0f}, {3});
  const array b = array::from({0.5f, 1.0f, 4.0f}, {3});
  const auto gmax = grad([](const std::vector<array>& v) { return sum(maximum(v[0], v[1])); }, {a, b});
  EXPECT_EQ(gmax[0].to_vector<float>(), (std::vector<float>{1, 0, 0}));
  EXPECT_EQ(gmax[1].to_vector<float>(), (std::vector<float>{0, 1, 1}));
  const auto gmin = grad([](const std::vector<array>& v) { return sum(minimum(v[0], v[1])); }, {a, b});
  EXPECT_EQ(gmin[0].to_vector<float>(), (std::vector<float>{0, 1, 1}));
  EXPECT_EQ(gmin[1].to_vector<float>(), (std::vector<float>{1, 0, 0}));
}

TEST(GradElementwise, WhereSendsGradientToBothBranches) {
  const array cond = greater(randn({3, 4}, 1), array(0.0f));
  const array cond_rows = greater(randn({3, 1}, 2), array(0.0f));
  // Same-shape branches, a broadcast [4] branch, a 0-d branch, and a broadcast condition.
  EXPECT_TRUE(
      check_grad([cond](const std::vector<array>& v) { return weighted_sum(where(cond, v[0], v[1])); },
                 {randn({3, 4}, 3), randn({3, 4}, 4)}));
  EXPECT_TRUE(
      check_grad([cond](const std::vector<array>& v) { return weighted_sum(where(cond, v[0], v[1])); },
                 {randn({4}, 5), randn({}, 6)}));
  EXPECT_TRUE(check_grad(
      [cond_rows](const std::vector<array>& v) { return weighted_sum(where(cond_rows, v[0], v[1])); },
      {randn({2, 1, 4}, 7), randn({4}, 8)}));

  // Exactly: d/da = [cond], d/db = [!cond].
  const auto g = grad([cond](const std::vector<array>& v) { return sum(where(cond, v[0], v[1])); },
                      {randn({3, 4}, 9), randn({3, 4}, 10)});
  const std::vector<float> c = astype(cond, dtype::f32).to_vector<float>();
  const std::vector<float> ga = g[0].to_vector<float>(), gb = g[1].to_vector<float>();
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(ga[i], c[i]) << i;
    EXPECT_EQ(gb[i], 1.0f - c[i]) << i;
  }
}

TEST(GradElementwise, ClipPassesGradientOnlyInsideTheBounds) {
  const float lo = -0.5f, hi = 0.7f;
  const array x = grad_check::away_from(randn({4, 5}, 1, 1.5f), {lo, hi}, 0.05f);
  EXPECT_TRUE(check_grad([=](const std::vector<array>& v) { return weighted_sum(clip(v[0], lo, hi)); }, {x}));
  EXPECT_TRUE(check_grad(
      [=](const std::vector<array>& v) { return weighted_sum(clip(v[0], lo, std::nullopt)); }, {x}));
  EXPECT_TRUE(check_grad(
      [=](const std::vector<array>& v) { return weighted_sum(clip(v[0], std::nullopt, hi)); }, {x}));

  const std::vector<float> g =
      grad([=](const std::vector<array>& v) { return sum(clip(v[0], lo, hi)); }, {x})[0].to_vector<float>();
  const std::vector<float> xv = x.to_vector<float>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(g[i], xv[i] > lo && xv[i] < hi ? 1.0f : 0.0f) << xv[i];
}

}  // namespace
}  // namespace mlxd
