// GRPO and RLOO advantages and the GRPO loss against float64 references, with the edge cases of groups
// (G = 1, ties, NaN rewards) and the invariance of the loss and gradient to splitting a batch.
#include "mlxd/rlhf/grpo.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "grad_check.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/rlhf/masked.h"
#include "test_util.h"

namespace mlxd::rlhf {
namespace {

using test::f32;
using test::near;

const double kNan = std::numeric_limits<double>::quiet_NaN();

TEST(GroupAdvantages, MatchFloat64ReferenceWithUnbiasedStd) {
  const std::vector<double> r = {1, 0, 0.5, 2, -3, 4, 4.5, 0.25};
  for (bool scale : {true, false}) {
    std::vector<double> want;
    for (int g = 0; g < 2; ++g) {
      double mu = 0, ss = 0;
      for (int i = 0; i < 4; ++i) mu += r[g * 4 + i] / 4;
      for (int i = 0; i < 4; ++i) ss += (r[g * 4 + i] - mu) * (r[g * 4 + i] - mu);
      const double sd = std::sqrt(ss / 3);
      for (int i = 0; i < 4; ++i)
        want.push_back(scale ? (r[g * 4 + i] - mu) / (sd + 1e-4) : r[g * 4 + i] - mu);
    }
    const group_advantages_result got = group_advantages(f32(r), 4, 1e-4, scale);
    EXPECT_TRUE(near(got.advantages, want, 1e-6, 1e-7));
    EXPECT_EQ(got.groups, 2);
    EXPECT_EQ(got.zero_std_groups, 0);
  }
}

TEST(GroupAdvantages, TiedGroupsAndSingleCompletionsGiveZero) {
  // 0.1 three times: a computed std would be rounding noise, not 0.
  const group_advantages_result tied = group_advantages(f32({0.1, 0.1, 0.1, 1, 2, 3}), 3);
  EXPECT_TRUE(near(slice_axis(tied.advantages, 0, 0, 3), {0, 0, 0}, 0, 0));
  EXPECT_EQ(tied.zero_std_groups, 1);
  const group_advantages_result one = group_advantages(f32({3, -1, 7}), 1);
  EXPECT_TRUE(near(one.advantages, {0, 0, 0}, 0, 0));
  EXPECT_EQ(one.zero_std_groups, 3);
  EXPECT_TRUE(near(rloo_advantages(f32({3, -1, 7}), 1).advantages, {0, 0, 0}, 0, 0));
  EXPECT_TRUE(near(rloo_advantages(f32({5, 5, 5, 5}), 4).advantages, {0, 0, 0, 0}, 0, 0));
}

TEST(GroupAdvantages, NanRewardIsExcludedFromItsGroupBaseline) {
  const group_advantages_result got = group_advantages(f32({1, kNan, 3, 5, 2, 2, 2, kNan}), 4);
  // Group 0 without the NaN: {1, 3, 5}, mean 3, unbiased std 2.
  const double s = 2 + 1e-4;
  EXPECT_TRUE(near(got.advantages, {-2 / s, 0, 0, 2 / s, 0, 0, 0, 0}, 1e-6, 1e-7));
  EXPECT_EQ(got.excluded, 2);
  EXPECT_EQ(got.zero_std_groups, 1);  // group 1: {2, 2, 2}
  EXPECT_TRUE(test::all_finite(got.advantages));
  // RLOO: each valid reward against the mean of the other valid ones.
  const group_advantages_result rl = rloo_advantages(f32({1, kNan, 3, 5}), 4);
  EXPECT_TRUE(near(rl.advantages, {1 - 4, 0, 3 - 3, 5 - 2}, 1e-6, 1e-7));
  // Only one finite reward left: nothing to compare it with.
  EXPECT_TRUE(near(group_advantages(f32({kNan, 4}), 2).advantages, {0, 0}, 0, 0));
}

TEST(RlooAdvantages, MatchReferenceAndGroupOfTwoGivesPlusMinusDifference) {
  const std::vector<double> r = {1.5, -2, 0.25, 4, 7, 7.5};
  std::vector<double> want;
  for (int g = 0; g < 2; ++g) {
    for (int i = 0; i < 3; ++i) {
      double others = 0;
      for (int j = 0; j < 3; ++j) others += j == i ? 0 : r[g * 3 + j];
      want.push_back(r[g * 3 + i] - others / 2);
    }
  }
  EXPECT_TRUE(near(rloo_advantages(f32(r), 3).advantages, want, 1e-6, 1e-7));
  EXPECT_TRUE(near(rloo_advantages(f32({3, 1.25, -4, 6}), 2).advantages, {1.75, -1.75, -10, 10}, 0, 0));
}

TEST(GroupAdvantages, RejectBadGroups) {
  EXPECT_THROW(group_advantages(f32({1, 2, 3}), 2), std::invalid_argument);
  EXPECT_THROW(group_advantages(f32({1, 2}), 0), std::invalid_argument);
  EXPECT_THROW(rloo_advantages(zeros({2, 2}), 2), std::invalid_argument);
  EXPECT_THROW(group_advantages(f32({1, 2}), 2, -1), std::invalid_argument);
}

// Four completions of 5 tokens: a prompt of 1, padding at the end, one empty completion (row 3).
const std::vector<double> kMask = {0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};

struct batch {
  array lp, old, ref, adv, mask;
};

batch make_batch() {
  const array old = grad_check::randn({4, 5}, 90, 0.5f);
  const array lr =
      grad_check::away_from(grad_check::randn({4, 5}, 91, 0.3f), {std::log(0.8f), std::log(1.28f)}, 0.04f);
  return {add(old, lr), old, grad_check::randn({4, 5}, 92, 0.5f), f32({1.2, -0.7, 0.4, -1.5}),
          f32(kMask, {4, 5})};
}

TEST(GrpoLoss, MatchesFloat64Reference) {
  const batch b = make_batch();
  const grpo_options o{.clip_low = 0.2, .clip_high = 0.28, .beta = 0.04};
  const std::vector<double> lp = b.lp.to_vector<double>(), old = b.old.to_vector<double>(),
                            ref = b.ref.to_vector<double>();
  const std::vector<double> adv = b.adv.to_vector<double>();
  double total = 0, kl = 0;
  std::vector<double> tok(20, 0);
  for (int i = 0; i < 20; ++i) {
    if (kMask[i] == 0) continue;
    const double a = adv[i / 5], r = std::exp(lp[i] - old[i]), d = ref[i] - lp[i];
    const double k3 = std::exp(d) - d - 1;
    tok[i] = -std::min(r * a, std::clamp(r, 0.8, 1.28) * a) + 0.04 * k3;
    total += tok[i], kl += k3;
  }
  for (double global : {8.0, 100.0}) {
    const grpo_result got = grpo_loss(b.lp, b.old, b.ref, b.adv, b.mask, global, o);
    EXPECT_TRUE(near(got.token_losses, tok, 1e-5, 1e-6));
    EXPECT_TRUE(near(got.loss, {total / global}, 1e-5, 1e-7));
    EXPECT_NEAR(got.kl_sum, kl, 1e-5);
    EXPECT_EQ(got.tokens, 8);
  }
  // beta 0 needs no reference at all.
  EXPECT_NO_THROW(grpo_loss(b.lp, b.old, array(), b.adv, b.mask, 7, {}));
}

TEST(GrpoLoss, GradientMatchesFiniteDifferences) {
  const batch b = make_batch();
  const grpo_options o{.clip_low = 0.2, .clip_high = 0.28, .beta = 0.1};
  EXPECT_TRUE(grad_check::check_grad(
      [&](const std::vector<array>& v) { return grpo_loss(v[0], b.old, b.ref, b.adv, b.mask, 8, o).loss; },
      {b.lp}, {.step = 1e-3, .rtol = 1e-2, .atol = 1e-4}));
}

TEST(GrpoLoss, MicroBatchesSummedOverTheGlobalCountEqualTheWholeBatch) {
  const batch b = make_batch();
  const grpo_options o{.clip_low = 0.2, .clip_high = 0.28, .beta = 0.04};
  const double global = static_cast<double>(count_valid(b.mask));
  auto loss_of = [&](int64_t from, int64_t to) {
    return [&, from, to](const std::vector<array>& v) {
      auto rows = [&](const array& a) { return slice_axis(a, 0, from, to); };
      return grpo_loss(v[0], rows(b.old), rows(b.ref), rows(b.adv), rows(b.mask), global, o).loss;
    };
  };
  const auto [whole, whole_grad] = value_and_grad(loss_of(0, 4), {b.lp});
  double parts = 0;
  std::vector<array> part_grads;
  for (auto [from, to] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 3}, {3, 4}}) {
    const auto [l, g] = value_and_grad(loss_of(from, to), {slice_axis(b.lp, 0, from, to)});
    parts += l.item<double>();
    part_grads.push_back(g[0]);
  }
  EXPECT_NEAR(parts, whole.item<double>(), 1e-6);
  EXPECT_TRUE(allclose(concatenate(part_grads, 0), whole_grad[0], 1e-6, 1e-8));
}

TEST(GrpoLoss, ClipMetricsAndRatioRange) {
  const array lp = f32({0.5, -0.5, 0.1, 0.0}, {2, 2}), old = zeros({2, 2});
  // Row 0 has A > 0: ratio e^0.5 is above 1.28 (clipped high), e^-0.5 below 0.8 but A > 0 (not clipped).
  // Row 1 has A < 0: e^0.1 inside; ratio 1 inside.
  const grpo_result r =
      grpo_loss(lp, old, array(), f32({1, -1}), ones({2, 2}), 4, {.clip_low = 0.2, .clip_high = 0.28});
  EXPECT_EQ(r.clipped_high, 1);
  EXPECT_EQ(r.clipped_low, 0);
  EXPECT_NEAR(r.ratio_min, std::exp(-0.5), 1e-6);
  EXPECT_NEAR(r.ratio_max, std::exp(0.5), 1e-6);
  const grpo_result none = grpo_loss(lp, old, array(), f32({1, -1}), zeros({2, 2}), 0, {});
  EXPECT_EQ(none.loss.item<double>(), 0.0);
  EXPECT_EQ(none.tokens, 0);
  EXPECT_THROW(grpo_loss(lp, old, array(), f32({1, -1}), ones({2, 2}), 4, {.beta = 0.1}),
               std::invalid_argument);
  EXPECT_THROW(grpo_loss(lp, old, array(), f32({1, -1, 0}), ones({2, 2}), 4, {}), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::rlhf
