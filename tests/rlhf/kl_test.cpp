// KL estimators, KL-penalised rewards and the KL controllers against float64 references.
#include "mlxd/rlhf/kl.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "grad_check.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "test_util.h"

namespace mlxd::rlhf {
namespace {

using test::f32;
using test::near;

TEST(KlEstimators, MatchFloat64Reference) {
  const array lp = grad_check::randn({3, 4}, 60, 2.0f), ref = grad_check::randn({3, 4}, 61, 2.0f);
  const std::vector<double> a = lp.to_vector<double>(), b = ref.to_vector<double>();
  std::vector<double> k1, k3;
  for (size_t i = 0; i < a.size(); ++i) {
    k1.push_back(a[i] - b[i]);
    const double d = b[i] - a[i];
    k3.push_back(std::exp(d) - d - 1);
  }
  EXPECT_TRUE(near(kl_k1(lp, ref), k1));
  EXPECT_TRUE(near(kl_k3(lp, ref), k3, 1e-5, 1e-6));
}

TEST(KlEstimators, K3IsNonNegativeAndPreciseNearZeroAndClampedFarAway) {
  std::vector<double> d;
  for (int e = -12; e <= 2; ++e) {
    for (double s : {-1.0, 1.0}) d.push_back(s * std::pow(10.0, e) * 1.37);
  }
  d.push_back(0);
  d.push_back(500);
  d.push_back(-500);
  const array ref = f32(d), lp = zeros({static_cast<int64_t>(d.size())});
  d = ref.to_vector<double>();  // the values as stored in f32
  const std::vector<double> k3 = kl_k3(lp, ref).to_vector<double>();
  for (size_t i = 0; i < d.size(); ++i) {
    SCOPED_TRACE(d[i]);
    EXPECT_GE(k3[i], 0.0);
    EXPECT_TRUE(std::isfinite(k3[i]));
    const double c = std::clamp(d[i], -max_log_ratio, max_log_ratio);
    const double want = std::expm1(c) - c;  // double reference
    // Relative precision holds down to |d| ~ 1e-3; below that the f32 absolute error of d itself dominates.
    EXPECT_NEAR(k3[i], want, 1e-5 * want + 1e-7 * std::fabs(c));
  }
  const auto [v, g] =
      value_and_grad([](const std::vector<array>& x) { return sum(kl_k3(x[0], x[1])); }, {lp, ref});
  EXPECT_TRUE(test::all_finite(g[0]));
  EXPECT_TRUE(test::all_finite(g[1]));
}

TEST(KlEstimators, GradientsMatchFiniteDifferences) {
  const array lp = grad_check::randn({2, 5}, 62), ref = grad_check::randn({2, 5}, 63);
  EXPECT_TRUE(grad_check::check_grad(
      [](const std::vector<array>& v) { return grad_check::weighted_sum(kl_k3(v[0], v[1])); }, {lp, ref}));
  EXPECT_TRUE(grad_check::check_grad(
      [](const std::vector<array>& v) { return grad_check::weighted_sum(kl_k1(v[0], v[1])); }, {lp, ref}));
}

TEST(KlPenalizedRewards, PenaltyOnEveryValidTokenAndScoreOnTheLast) {
  const std::vector<double> lp = {-1, -2, -3, -4, -0.5, -0.7, -0.1, -9, -1, -1, -1, -1};
  const std::vector<double> ref = {-1.5, -2, -2, -4, -0.2, -0.7, -1.1, 0, -1, -1, -1, -1};
  const std::vector<double> mask = {0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0};
  const std::vector<double> scores = {2, -3, 100};
  const double beta = 0.05;
  std::vector<double> want(12, 0);
  for (int b = 0; b < 3; ++b) {
    int last = -1;
    for (int t = 0; t < 4; ++t) {
      const int i = b * 4 + t;
      if (mask[i]) want[i] = -beta * (lp[i] - ref[i]), last = i;
    }
    if (last >= 0) want[last] += scores[b];
  }
  EXPECT_TRUE(near(
      kl_penalized_rewards(f32(scores), f32(lp, {3, 4}), f32(ref, {3, 4}), f32(mask, {3, 4}), beta), want));
  EXPECT_THROW(kl_penalized_rewards(f32(scores), f32(lp, {3, 4}), f32(ref, {3, 4}), f32(mask, {3, 4}), -1),
               std::invalid_argument);
}

TEST(KlController, FixedNeverMovesAndAdaptiveFollowsTheTrlFormula) {
  kl_controller fixed = kl_controller::fixed(0.1);
  fixed.update(50, 64);
  EXPECT_EQ(fixed.beta(), 0.1);
  kl_controller adaptive = kl_controller::adaptive(0.2, 6.0, 10000);
  double beta = 0.2;
  for (double kl : {1.0, 6.0, 12.0, 5.5, 0.0, 100.0}) {
    adaptive.update(kl, 256);
    beta *= 1 + std::clamp(kl / 6.0 - 1, -0.2, 0.2) * 256 / 10000;  // Ziegler et al. 2019, eq. 2
    EXPECT_DOUBLE_EQ(adaptive.beta(), beta) << kl;
  }
  EXPECT_THROW(adaptive.update(std::nan(""), 1), std::invalid_argument);
  EXPECT_THROW(kl_controller::adaptive(0.1, 0, 100), std::invalid_argument);
  EXPECT_THROW(kl_controller::fixed(-1), std::invalid_argument);
}

TEST(KlController, StateRoundTripsExactlyThroughJson) {
  kl_controller c = kl_controller::adaptive(0.1, 6.0, 10000);
  for (int i = 0; i < 7; ++i) c.update(3.3 + i, 100);
  const kl_controller back = kl_controller::from_json(c.to_json());
  EXPECT_EQ(back, c);
  EXPECT_EQ(back.beta(), c.beta());
  // Continuing from the restored state gives bit-identical coefficients.
  kl_controller a = c, b = back;
  a.update(4.2, 10), b.update(4.2, 10);
  EXPECT_EQ(a.beta(), b.beta());
  EXPECT_EQ(kl_controller::from_json(kl_controller::fixed(0.3).to_json()), kl_controller::fixed(0.3));
  EXPECT_THROW(kl_controller::from_json("{"), std::invalid_argument);
  EXPECT_THROW(kl_controller::from_json(R"({"adaptive":true,"beta":0.1,"target":6})"), std::invalid_argument);
  EXPECT_THROW(kl_controller::from_json(R"({"adaptive":1,"beta":0.1,"target":6,"horizon":5})"),
               std::invalid_argument);
  EXPECT_THROW(kl_controller::from_json(R"({"adaptive":true,"beta":-1,"target":6,"horizon":5})"),
               std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::rlhf
