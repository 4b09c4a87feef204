// GAE, the clipped policy and value losses and the entropy against float64 references written here, with
// gradients against central differences.
#include "mlxd/rlhf/ppo.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "grad_check.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/rlhf/masked.h"
#include "test_util.h"

namespace mlxd::rlhf {
namespace {

using test::f32;
using test::near;

// Rows of 6 positions: a prompt of 2 then completion; row 1 has padding after 3 tokens and a hole at t = 3;
// row 2 is fully masked.
const std::vector<double> kMask = {0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0};

// GAE as the explicit sum A_t = sum_l (gamma lambda)^l delta_{t+l} over the valid steps of each row.
void gae_reference(const std::vector<double>& r, const std::vector<double>& v, const std::vector<double>& m,
                   int64_t rows, int64_t cols, double gamma, double lambda, std::vector<double>& adv,
                   std::vector<double>& ret) {
  adv.assign(r.size(), 0), ret.assign(r.size(), 0);
  for (int64_t b = 0; b < rows; ++b) {
    std::vector<int64_t> idx;
    for (int64_t t = 0; t < cols; ++t) {
      if (m[b * cols + t] != 0) idx.push_back(b * cols + t);
    }
    const size_t n = idx.size();
    for (size_t s = 0; s < n; ++s) {
      double a = 0, w = 1;
      for (size_t l = s; l < n; ++l) {
        const double next_v = l + 1 < n ? v[idx[l + 1]] : 0.0;
        a += w * (r[idx[l]] + gamma * next_v - v[idx[l]]);
        w *= gamma * lambda;
      }
      adv[idx[s]] = a;
      ret[idx[s]] = a + v[idx[s]];
    }
  }
}

TEST(Gae, MatchesExplicitSumReference) {
  const array r = grad_check::randn({3, 6}, 70), v = grad_check::randn({3, 6}, 71);
  const array m = f32(kMask, {3, 6});
  for (auto [gamma, lambda] :
       std::vector<std::pair<double, double>>{{0.99, 0.95}, {1.0, 0.9}, {0.5, 0.0}, {0.0, 1.0}}) {
    SCOPED_TRACE(std::to_string(gamma) + " " + std::to_string(lambda));
    std::vector<double> adv, ret;
    gae_reference(r.to_vector<double>(), v.to_vector<double>(), kMask, 3, 6, gamma, lambda, adv, ret);
    const gae_result got = gae(r, v, m, gamma, lambda);
    EXPECT_TRUE(near(got.advantages, adv, 1e-5, 1e-6));
    EXPECT_TRUE(near(got.returns, ret, 1e-5, 1e-6));
  }
}

TEST(Gae, GammaLambdaOneGivesRewardToGoMinusValues) {
  const array r = grad_check::randn({3, 6}, 72), v = grad_check::randn({3, 6}, 73);
  const std::vector<double> rv = r.to_vector<double>(), vv = v.to_vector<double>();
  std::vector<double> to_go(18, 0), adv(18, 0);
  for (int b = 0; b < 3; ++b) {
    double acc = 0;
    for (int t = 5; t >= 0; --t) {
      const int i = b * 6 + t;
      if (kMask[i] == 0) continue;
      acc += rv[i];
      to_go[i] = acc;
      adv[i] = acc - vv[i];
    }
  }
  const gae_result got = gae(r, v, f32(kMask, {3, 6}), 1.0, 1.0);
  EXPECT_TRUE(near(got.returns, to_go, 1e-5, 1e-6));
  EXPECT_TRUE(near(got.advantages, adv, 1e-5, 1e-6));
  // returns - values == advantages on valid tokens, and everything is 0 on the fully masked row.
  EXPECT_TRUE(near(masked_zero(subtract(got.returns, v), f32(kMask, {3, 6})), adv, 1e-5, 1e-6));
}

TEST(Gae, RejectsBadArguments) {
  const array x = zeros({2, 3});
  EXPECT_THROW(gae(x, x, ones({2, 3}), 1.5, 0.9), std::invalid_argument);
  EXPECT_THROW(gae(x, zeros({2, 4}), ones({2, 3}), 0.9, 0.9), std::invalid_argument);
  EXPECT_THROW(gae(f32({1, NAN, 0}, {1, 3}), zeros({1, 3}), ones({1, 3}), 0.9, 0.9), std::invalid_argument);
  EXPECT_NO_THROW(gae(f32({1, NAN, 0}, {1, 3}), zeros({1, 3}), f32({1, 0, 1}, {1, 3}), 0.9, 0.9));
}

double policy_reference(double lp, double old, double a, double lo, double hi) {
  const double r = std::exp(lp - old);
  return std::max(-a * r, -a * std::clamp(r, 1 - lo, 1 + hi));
}

TEST(ClippedPolicyLoss, MatchesReferenceAndCountsClipping) {
  const array lp = grad_check::randn({3, 6}, 74, 0.5f), old = grad_check::randn({3, 6}, 75, 0.5f);
  const array adv = grad_check::randn({3, 6}, 76);
  const std::vector<double> a = lp.to_vector<double>(), b = old.to_vector<double>(),
                            c = adv.to_vector<double>();
  const double lo = 0.2, hi = 0.28;
  std::vector<double> want(18, 0);
  int64_t low = 0, high = 0, tokens = 0;
  double rmin = INFINITY, rmax = -INFINITY;
  for (int i = 0; i < 18; ++i) {
    if (kMask[i] == 0) continue;
    want[i] = policy_reference(a[i], b[i], c[i], lo, hi);
    const double r = std::exp(a[i] - b[i]);
    low += r < 1 - lo && c[i]<0, high += r> 1 + hi && c[i] > 0, ++tokens;
    rmin = std::min(rmin, r), rmax = std::max(rmax, r);
  }
  const policy_loss_result got = clipped_policy_loss(lp, old, adv, f32(kMask, {3, 6}), lo, hi);
  EXPECT_TRUE(near(got.losses, want, 1e-5, 1e-6));
  EXPECT_EQ(got.tokens, tokens);
  EXPECT_EQ(got.clipped_low, low);
  EXPECT_EQ(got.clipped_high, high);
  EXPECT_GT(low + high, 0);  // the draw exercises the clip
  EXPECT_NEAR(got.ratio_min, rmin, 1e-5 * rmin);
  EXPECT_NEAR(got.ratio_max, rmax, 1e-5 * rmax);
}

TEST(ClippedPolicyLoss, GradientMatchesFiniteDifferencesAndIsZeroWhereClipped) {
  // Log-ratios kept away from the clip edges log(0.8) and log(1.2), where the loss has kinks.
  const array old = grad_check::randn({3, 6}, 77, 0.5f);
  const array lr =
      grad_check::away_from(grad_check::randn({3, 6}, 78, 0.4f), {std::log(0.8f), std::log(1.2f)}, 0.05f);
  const array lp = add(old, lr);
  const array adv = grad_check::signed_uniform({3, 6}, 79, 0.2f, 2.0f);
  const array m = f32(kMask, {3, 6});
  EXPECT_TRUE(grad_check::check_grad(
      [&](const std::vector<array>& v) {
        return masked_mean(clipped_policy_loss(v[0], old, adv, m, 0.2, 0.2).losses, m);
      },
      {lp}, {.step = 1e-3, .rtol = 1e-2, .atol = 1e-4}));
  const auto g = grad(
                     [&](const std::vector<array>& v) {
                       return sum(clipped_policy_loss(v[0], old, adv, m, 0.2, 0.2).losses);
                     },
                     {lp})[0]
                     .to_vector<double>();
  const std::vector<double> r = lr.to_vector<double>(), a = adv.to_vector<double>();
  for (int i = 0; i < 18; ++i) {
    const bool clipped = (a[i] > 0 && r[i] > std::log(1.2)) || (a[i] < 0 && r[i] < std::log(0.8));
    if (kMask[i] == 0 || clipped) {
      EXPECT_EQ(g[i], 0.0) << i;
    } else {
      EXPECT_NEAR(g[i], -a[i] * std::exp(r[i]), 1e-5 * (1 + std::fabs(a[i]) * std::exp(r[i]))) << i;
    }
  }
}

TEST(ClippedPolicyLoss, MicroBatchesOverTheGlobalCountEqualTheMaskedMeanOfTheWhole) {
  const array old = grad_check::randn({3, 6}, 85, 0.5f), adv = grad_check::randn({3, 6}, 86);
  const array lp = add(old, grad_check::randn({3, 6}, 87, 0.3f));
  const array m = f32(kMask, {3, 6});
  const double global = static_cast<double>(count_valid(m));
  const auto [whole, whole_grad] = value_and_grad(
      [&](const std::vector<array>& v) {
        return masked_mean(clipped_policy_loss(v[0], old, adv, m, 0.2, 0.2).losses, m);
      },
      {lp});
  double parts = 0;
  std::vector<array> grads;
  for (auto [from, to] : std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 3}}) {
    auto rows = [&](const array& a) { return slice_axis(a, 0, from, to); };
    const auto [l, g] = value_and_grad(
        [&](const std::vector<array>& v) {
          return token_mean(clipped_policy_loss(v[0], rows(old), rows(adv), rows(m), 0.2, 0.2).losses,
                            rows(m), global);
        },
        {rows(lp)});
    parts += l.item<double>();
    grads.push_back(g[0]);
  }
  EXPECT_NEAR(parts, whole.item<double>(), 1e-6);
  EXPECT_TRUE(allclose(concatenate(grads, 0), whole_grad[0], 1e-6, 1e-8));
}

TEST(ClippedPolicyLoss, HugeLogRatiosAreClampedToFiniteValues) {
  const array lp = f32({0, 0, 0, 0}, {1, 4}), old = f32({-1e4, 1e4, -60, 60}, {1, 4});
  const array adv = f32({-1, 1, -1, 1}, {1, 4});
  const auto [loss, grads] = value_and_grad(
      [&](const std::vector<array>& v) {
        return sum(clipped_policy_loss(v[0], old, adv, ones({1, 4}), 0.2, 0.2).losses);
      },
      {lp});
  EXPECT_TRUE(test::all_finite(loss));
  EXPECT_TRUE(test::all_finite(grads[0]));
  const policy_loss_result r = clipped_policy_loss(lp, old, adv, ones({1, 4}), 0.2, 0.2);
  EXPECT_NEAR(r.ratio_max, std::exp(20.0), 1e-6 * std::exp(20.0));
  EXPECT_THROW(clipped_policy_loss(lp, old, adv, ones({1, 4}), 1.0, 0.2), std::invalid_argument);
}

TEST(ClippedValueLoss, MatchesReferenceAndFiniteDifferences) {
  const array v = grad_check::randn({3, 6}, 80), old = grad_check::randn({3, 6}, 81);
  const array ret = grad_check::randn({3, 6}, 82);
  const double clip = 0.3;
  const std::vector<double> a = v.to_vector<double>(), b = old.to_vector<double>(),
                            c = ret.to_vector<double>();
  std::vector<double> want(18, 0);
  int64_t clipped = 0;
  for (int i = 0; i < 18; ++i) {
    if (kMask[i] == 0) continue;
    const double vc = b[i] + std::clamp(a[i] - b[i], -clip, clip);
    const double e1 = (a[i] - c[i]) * (a[i] - c[i]), e2 = (vc - c[i]) * (vc - c[i]);
    want[i] = 0.5 * std::max(e1, e2);
    clipped += e2 > e1;
  }
  const value_loss_result got = clipped_value_loss(v, old, ret, f32(kMask, {3, 6}), clip);
  EXPECT_TRUE(near(got.losses, want, 1e-5, 1e-6));
  EXPECT_EQ(got.clipped, clipped);
  EXPECT_EQ(got.tokens, 7);
  // |v - old| kept away from the clip edge for the finite differences.
  const array dv = grad_check::away_from(subtract(v, old), {-0.3f, 0.3f}, 0.05f);
  EXPECT_TRUE(grad_check::check_grad(
      [&](const std::vector<array>& x) {
        return masked_mean(clipped_value_loss(x[0], old, ret, f32(kMask, {3, 6}), clip).losses,
                           f32(kMask, {3, 6}));
      },
      {add(old, dv)}, {.step = 1e-3, .rtol = 1e-2, .atol = 1e-4}));
}

std::vector<double> entropy_reference(const array& logits, const std::vector<double>& mask) {
  const int64_t n = logits.shape(0) * logits.shape(1), vocab = logits.shape(2);
  const std::vector<double> x = logits.to_vector<double>();
  std::vector<double> h(n, 0);
  for (int64_t p = 0; p < n; ++p) {
    if (mask[p] == 0) continue;
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < vocab; ++k) m = std::max(m, x[p * vocab + k]);
    for (int64_t k = 0; k < vocab; ++k) s += std::exp(x[p * vocab + k] - m);
    for (int64_t k = 0; k < vocab; ++k) {
      const double q = std::exp(x[p * vocab + k] - m) / s;
      if (q > 0) h[p] -= q * std::log(q);
    }
  }
  return h;
}

TEST(Entropy, MatchesReferenceAndFiniteDifferences) {
  const array logits = grad_check::randn({3, 6, 5}, 83, 2.0f);
  const array m = f32(kMask, {3, 6});
  EXPECT_TRUE(near(entropy_from_logits(logits, m), entropy_reference(logits, kMask), 1e-5, 1e-6));
  EXPECT_TRUE(near(entropy_from_logits(astype(logits, dtype::bf16), m),
                   entropy_reference(astype(logits, dtype::bf16), kMask), 1e-5, 1e-6));
  EXPECT_TRUE(grad_check::check_grad(
      [&](const std::vector<array>& v) { return grad_check::weighted_sum(entropy_from_logits(v[0], m)); },
      {logits}));
  // Uniform logits over V tokens: entropy log V.
  EXPECT_TRUE(near(entropy_from_logits(zeros({1, 1, 8}), ones({1, 1})), {std::log(8.0)}, 1e-6, 0));
}

TEST(Entropy, NegativeInfinityLogitsContributeZero) {
  std::vector<double> x = grad_check::randn({3, 6, 5}, 84).to_vector<double>();
  const double inf = std::numeric_limits<double>::infinity();
  x[2 * 5 + 1] = -inf;                                    // a banned token at a valid position
  for (int k = 0; k < 5; ++k) x[0 * 5 + k] = -inf;        // a masked position, all -inf
  for (int k = 0; k < 5; ++k) x[(2 * 6) * 5 + k] = -inf;  // the fully masked row
  const array logits = f32(x, {3, 6, 5});
  const array m = f32(kMask, {3, 6});
  for (kernel_level level : grad_check::kernel_levels()) {
    const kernel_level_guard guard(level);
    SCOPED_TRACE(kernel_level_name(level));
    EXPECT_TRUE(near(entropy_from_logits(logits, m), entropy_reference(logits, kMask), 1e-5, 1e-6));
    const auto [val, g] = value_and_grad(
        [&](const std::vector<array>& v) { return sum(entropy_from_logits(v[0], m)); }, {logits});
    EXPECT_TRUE(test::all_finite(val));
    EXPECT_TRUE(test::all_finite(g[0]));
  }
}

}  // namespace
}  // namespace mlxd::rlhf
