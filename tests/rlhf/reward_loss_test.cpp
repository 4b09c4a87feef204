// The Bradley-Terry reward loss against a float64 reference, its gradients against central differences, and
// its behaviour at extreme margins.
#include "mlxd/rlhf/reward_loss.h"

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

// -log sigmoid(d) = log(1 + exp(-d)), written the plain way for moderate d.
double bt_reference(double c, double r, double m, double coef) {
  return std::log(1.0 + std::exp(-(c - r - m))) + coef * (c + r) * (c + r);
}

TEST(RewardLoss, MatchesFloat64Reference) {
  const std::vector<double> c = {1.5, -0.3, 2.0, 0.25, -4.0}, r = {0.5, 0.7, 2.0, -1.0, 3.0};
  const std::vector<double> m = {0.0, 0.5, -1.0, 2.0, 0.1};
  for (double coef : {0.0, 0.01, 0.5}) {
    SCOPED_TRACE(coef);
    const reward_loss_result got = reward_loss(f32(c), f32(r), f32(m), {.center_coefficient = coef});
    std::vector<double> want(c.size());
    double total = 0;
    for (size_t i = 0; i < c.size(); ++i) total += want[i] = bt_reference(c[i], r[i], m[i], coef);
    EXPECT_TRUE(near(got.losses, want));
    EXPECT_TRUE(near(got.loss, {total / static_cast<double>(c.size())}));
    const reward_loss_result no_margin = reward_loss(f32(c), f32(r), array(), {.center_coefficient = coef});
    for (size_t i = 0; i < c.size(); ++i) want[i] = bt_reference(c[i], r[i], 0, coef);
    EXPECT_TRUE(near(no_margin.losses, want));
  }
}

TEST(RewardLoss, AccuracyCountsStrictWinsOnly) {
  const reward_loss_result r = reward_loss(f32({1, 2, 3, 4}), f32({0, 2, 5, 3.5}));
  EXPECT_EQ(r.correct, 2);  // the tie (2, 2) is not a win
  EXPECT_EQ(r.pairs, 4);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
  const reward_loss_result none = reward_loss(zeros({0}), zeros({0}));
  EXPECT_EQ(none.pairs, 0);
  EXPECT_EQ(none.accuracy, 0.0);
  EXPECT_EQ(none.loss.item<double>(), 0.0);
}

TEST(RewardLoss, GradientMatchesFiniteDifferences) {
  const array c = grad_check::randn({6}, 10, 2.0f), r = grad_check::randn({6}, 11, 2.0f);
  const array m = grad_check::randu({6}, 12, -1.0f, 1.0f);
  for (double coef : {0.0, 0.1}) {
    SCOPED_TRACE(coef);
    EXPECT_TRUE(grad_check::check_grad(
        [coef](const std::vector<array>& v) {
          return reward_loss(v[0], v[1], v[2], {.center_coefficient = coef}).loss;
        },
        {c, r, m}));
  }
  // The analytic gradient of the mean loss in r_c is -sigmoid(-(r_c - r_r - m)) / N.
  const auto g = grad([](const std::vector<array>& v) { return reward_loss(v[0], v[1]).loss; }, {c, r});
  const std::vector<double> cv = c.to_vector<double>(), rv = r.to_vector<double>();
  std::vector<double> want(6);
  for (int i = 0; i < 6; ++i) want[i] = -1.0 / (1.0 + std::exp(cv[i] - rv[i])) / 6.0;
  EXPECT_TRUE(near(g[0], want, 1e-5, 1e-7));
}

TEST(RewardLoss, ExtremeMarginsStayFinite) {
  // d = r_c - r_r - margin = 1e4, -1e4, 1e4, -2e4: the loss is ~0 or ~|d|, the gradient ~0 or -1/N.
  const array c = f32({1e4, -1e4, 0, 0}), r = f32({0, 0, 1e4, -1e4}), m = f32({0, 0, -2e4, 3e4});
  const auto [loss, grads] = value_and_grad(
      [](const std::vector<array>& v) { return reward_loss(v[0], v[1], v[2]).loss; }, {c, r, m});
  EXPECT_TRUE(test::all_finite(loss));
  for (const array& g : grads) EXPECT_TRUE(test::all_finite(g));
  const reward_loss_result res = reward_loss(c, r, m);
  EXPECT_TRUE(near(res.losses, {0, 1e4, 0, 2e4}, 1e-6, 1e-6));
  EXPECT_TRUE(near(grads[0], {0, -0.25, 0, -0.25}, 1e-6, 1e-9));
}

TEST(RewardLoss, MarginToPlusInfinityGivesZeroLossAndGradient) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double big : {1e3, 1e6, 1e30, inf}) {
    SCOPED_TRACE(big);
    const auto [loss, grads] = value_and_grad(
        [](const std::vector<array>& v) { return reward_loss(v[0], v[1]).loss; }, {f32({big}), f32({0})});
    EXPECT_EQ(loss.item<double>(), 0.0);
    EXPECT_EQ(grads[0].item<double>(), 0.0);
    EXPECT_EQ(grads[1].item<double>(), 0.0);
  }
}

TEST(RewardLoss, RejectsBadArguments) {
  EXPECT_THROW(reward_loss(zeros({3}), zeros({4})), std::invalid_argument);
  EXPECT_THROW(reward_loss(zeros({3, 1}), zeros({3, 1})), std::invalid_argument);
  EXPECT_THROW(reward_loss(zeros({3}), zeros({3}), zeros({2})), std::invalid_argument);
  EXPECT_THROW(reward_loss(zeros({3}), zeros({3}, dtype::i32)), std::invalid_argument);
  EXPECT_THROW(reward_loss(zeros({3}), zeros({3}), array(), {.center_coefficient = -1}),
               std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::rlhf
