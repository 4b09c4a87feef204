// DPO losses against float64 references of each formula, their gradients against central differences, and
// the identities and extremes the issue lists.
#include "mlxd/rlhf/dpo.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "grad_check.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "test_util.h"

namespace mlxd::rlhf {
namespace {

using test::f32;
using test::near;

const std::vector<dpo_loss_type> kTypes = {dpo_loss_type::sigmoid, dpo_loss_type::conservative,
                                           dpo_loss_type::robust, dpo_loss_type::hinge, dpo_loss_type::ipo};

// log sigmoid(x) = -log(1 + e^-x), in the form that does not overflow for large |x|.
double log_sig(double x) {
  return std::min(x, 0.0) - std::log1p(std::exp(-std::fabs(x)));
}

// The formulas of the DPO, cDPO, robust DPO, SLiC and IPO papers on h in double.
double dpo_reference(dpo_loss_type t, double h, double beta, double e) {
  const double z = beta * h;
  switch (t) {
    case dpo_loss_type::sigmoid:
      return -log_sig(z);
    case dpo_loss_type::conservative:
      return -(1 - e) * log_sig(z) - e * log_sig(-z);
    case dpo_loss_type::robust:
      return (-(1 - e) * log_sig(z) + e * log_sig(-z)) / (1 - 2 * e);
    case dpo_loss_type::hinge:
      return std::max(0.0, 1 - z);
    case dpo_loss_type::ipo:
      return (h - 1 / (2 * beta)) * (h - 1 / (2 * beta));
  }
  return NAN;
}

double smoothing_for(dpo_loss_type t) {
  return t == dpo_loss_type::conservative || t == dpo_loss_type::robust ? 0.1 : 0.0;
}

struct pairs {
  array pc, pr, rc, rr;
  std::vector<double> h;
};

pairs make_pairs(uint64_t stream, float scale) {
  pairs p{grad_check::randn({7}, stream, scale),
          grad_check::randn({7}, stream + 1, scale),
          grad_check::randn({7}, stream + 2, scale),
          grad_check::randn({7}, stream + 3, scale),
          {}};
  const auto a = p.pc.to_vector<double>(), b = p.pr.to_vector<double>(), c = p.rc.to_vector<double>(),
             d = p.rr.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) p.h.push_back((a[i] - b[i]) - (c[i] - d[i]));
  return p;
}

TEST(DpoLoss, EveryTypeMatchesFloat64Reference) {
  const pairs p = make_pairs(20, 3.0f);
  for (dpo_loss_type t : kTypes) {
    for (double beta : {0.1, 0.5, 2.0}) {
      SCOPED_TRACE(std::string(name(t)) + " beta " + std::to_string(beta));
      const double e = smoothing_for(t);
      const dpo_result got =
          dpo_loss(p.pc, p.pr, p.rc, p.rr, {.type = t, .beta = beta, .label_smoothing = e});
      std::vector<double> want;
      double total = 0;
      for (double h : p.h) total += want.emplace_back(dpo_reference(t, h, beta, e));
      EXPECT_TRUE(near(got.losses, want, 2e-5, 2e-6));
      EXPECT_TRUE(near(got.loss, {total / 7}, 2e-5, 2e-6));
    }
  }
}

TEST(DpoLoss, RewardsMarginsAndAccuracy) {
  const dpo_result r = dpo_loss(f32({-3, -5}), f32({-4, -2}), f32({-3.5, -4}), f32({-4, -4}), {.beta = 0.5});
  EXPECT_TRUE(near(r.chosen_rewards, {0.25, -0.5}));
  EXPECT_TRUE(near(r.rejected_rewards, {0, 1}));
  EXPECT_TRUE(near(r.margins, {0.25, -1.5}));
  EXPECT_EQ(r.correct, 1);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
}

TEST(DpoLoss, GradientsMatchFiniteDifferences) {
  const pairs p = make_pairs(30, 2.0f);
  for (dpo_loss_type t : kTypes) {
    SCOPED_TRACE(std::string(name(t)));
    const dpo_options o{.type = t, .beta = 0.7, .label_smoothing = smoothing_for(t)};
    // hinge has a kink at beta h = 1: keep every pair away from it.
    pairs q = p;
    if (t == dpo_loss_type::hinge)
      q.pc = add(q.pc, grad_check::away_from(f32(q.h), {1.0f / 0.7f}, 0.2f) - f32(q.h));
    EXPECT_TRUE(grad_check::check_grad(
        [o](const std::vector<array>& v) { return dpo_loss(v[0], v[1], v[2], v[3], o).loss; },
        {q.pc, q.pr, q.rc, q.rr}));
  }
}

TEST(DpoLoss, RobustAndConservativeWithZeroSmoothingEqualSigmoid) {
  const pairs p = make_pairs(40, 5.0f);
  const dpo_result s = dpo_loss(p.pc, p.pr, p.rc, p.rr, {.type = dpo_loss_type::sigmoid, .beta = 0.3});
  for (dpo_loss_type t : {dpo_loss_type::robust, dpo_loss_type::conservative}) {
    const dpo_result r = dpo_loss(p.pc, p.pr, p.rc, p.rr, {.type = t, .beta = 0.3, .label_smoothing = 0});
    EXPECT_TRUE(array_equal(r.losses, s.losses)) << name(t);
  }
}

TEST(DpoLoss, IpoMinimumIsAtOneOverTwoBeta) {
  for (double beta : {0.1, 0.5, 1.0}) {
    SCOPED_TRACE(beta);
    const double h0 = 1 / (2 * beta);
    // h = pc - pr with zero reference log-probs.
    auto loss_at = [&](double h) {
      return dpo_loss(f32({h}), f32({0}), f32({0}), f32({0}), {.type = dpo_loss_type::ipo, .beta = beta})
          .loss.item<double>();
    };
    EXPECT_NEAR(loss_at(h0), 0.0, 1e-10);
    EXPECT_GT(loss_at(h0 + 0.05), loss_at(h0));
    EXPECT_GT(loss_at(h0 - 0.05), loss_at(h0));
    const auto g = grad(
        [&](const std::vector<array>& v) {
          return dpo_loss(v[0], f32({0}), f32({0}), f32({0}), {.type = dpo_loss_type::ipo, .beta = beta})
              .loss;
        },
        {f32({h0})});
    EXPECT_NEAR(g[0].item<double>(), 0.0, 1e-5);
  }
}

TEST(DpoLoss, BetaToZeroGivesLogTwo) {
  const pairs p = make_pairs(50, 10.0f);
  double hmax = 0;
  for (double h : p.h) hmax = std::max(hmax, std::fabs(h));
  for (dpo_loss_type t : {dpo_loss_type::sigmoid, dpo_loss_type::conservative, dpo_loss_type::robust}) {
    for (double beta : {1e-3, 1e-6, 1e-9}) {
      SCOPED_TRACE(std::string(name(t)) + " beta " + std::to_string(beta));
      const dpo_result r =
          dpo_loss(p.pc, p.pr, p.rc, p.rr, {.type = t, .beta = beta, .label_smoothing = smoothing_for(t)});
      // |loss - log 2| <= |d loss / d(beta h)| beta |h| <= beta |h| / (1 - 2e) near 0, plus f32 rounding.
      EXPECT_TRUE(near(r.losses, std::vector<double>(7, std::numbers::ln2), 0, 1.25 * beta * hmax + 2e-7));
    }
  }
}

TEST(DpoLoss, MarginsOfTenThousandGiveFiniteLossesAndGradients) {
  for (dpo_loss_type t : kTypes) {
    for (double h : {1e4, -1e4}) {
      SCOPED_TRACE(std::string(name(t)) + " h " + std::to_string(h));
      const dpo_options o{.type = t, .beta = 1.0, .label_smoothing = smoothing_for(t)};
      const auto [loss, grads] = value_and_grad(
          [o](const std::vector<array>& v) { return dpo_loss(v[0], v[1], v[2], v[3], o).loss; },
          {f32({h / 2}), f32({-h / 2}), f32({0}), f32({0})});
      EXPECT_TRUE(test::all_finite(loss));
      for (const array& g : grads) EXPECT_TRUE(test::all_finite(g));
      EXPECT_NEAR(loss.item<double>(), dpo_reference(t, h, 1.0, o.label_smoothing),
                  1e-3 * (1 + std::fabs(loss.item<double>())));
    }
  }
}

TEST(DpoLoss, MarginToPlusInfinityGivesZeroLossAndGradient) {
  const double inf = std::numeric_limits<double>::infinity();
  for (dpo_loss_type t :
       {dpo_loss_type::sigmoid, dpo_loss_type::conservative, dpo_loss_type::robust, dpo_loss_type::hinge}) {
    for (double big : {1e5, 1e30, inf}) {
      SCOPED_TRACE(std::string(name(t)) + " " + std::to_string(big));
      const dpo_options o{.type = t, .beta = 0.1};
      const auto [loss, grads] = value_and_grad(
          [o](const std::vector<array>& v) { return dpo_loss(v[0], v[1], v[2], v[3], o).loss; },
          {f32({big}), f32({-3}), f32({-2}), f32({-3})});
      EXPECT_EQ(loss.item<double>(), 0.0);
      for (const array& g : grads) EXPECT_EQ(g.item<double>(), 0.0);
    }
  }
}

TEST(DpoLoss, RejectsBadOptionsAndShapes) {
  const array a = zeros({3});
  EXPECT_THROW(dpo_loss(a, a, a, zeros({2})), std::invalid_argument);
  EXPECT_THROW(dpo_loss(a, a, a, a, {.beta = 0}), std::invalid_argument);
  EXPECT_THROW(dpo_loss(a, a, a, a, {.type = dpo_loss_type::robust, .label_smoothing = 0.5}),
               std::invalid_argument);
  EXPECT_THROW(dpo_loss(a, a, a, a, {.type = dpo_loss_type::conservative, .label_smoothing = 0.6}),
               std::invalid_argument);
  EXPECT_THROW(dpo_loss(a, a, a, a, {.type = dpo_loss_type::sigmoid, .label_smoothing = 0.1}),
               std::invalid_argument);
  EXPECT_EQ(parse_dpo_loss_type("ipo"), dpo_loss_type::ipo);
  EXPECT_THROW(parse_dpo_loss_type("kto"), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::rlhf
