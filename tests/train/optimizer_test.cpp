// Optimizers against values worked out by hand for a few steps on one-element parameters, plus parameter
// groups, state save/restore and argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/train/adam.h"
#include "mlxd/train/lion.h"
#include "mlxd/train/sgd.h"

namespace mlxd::train {
namespace {

array scalar1(float x) {
  return array::from({x}, {1});
}

// Runs `opt` on one parameter starting at p0 with the given gradients and lr; returns p after each step.
std::vector<float> run(optimizer& opt, float p0, const std::vector<float>& grads, double lr) {
  std::vector<array> params{scalar1(p0)};
  std::vector<float> out;
  for (float g : grads) {
    opt.step(params, {scalar1(g)}, lr);
    out.push_back(params[0].item<float>());
  }
  return out;
}

TEST(Sgd, PlainAndWeightDecay) {
  sgd plain({"p"}, {scalar1(1.0f)});
  auto p = run(plain, 1.0f, {1.0f, -2.0f}, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.9f);
  EXPECT_FLOAT_EQ(p[1], 1.1f);
  sgd decay({"p"}, {scalar1(1.0f)}, {.weight_decay = 0.5});
  p = run(decay, 1.0f, {1.0f, 1.0f}, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.85f);            // 1 - 0.1 * (1 + 0.5 * 1)
  EXPECT_FLOAT_EQ(p[1], 0.85f - 0.1425f);  // 0.85 - 0.1 * (1 + 0.5 * 0.85)
}

TEST(Sgd, MomentumDampeningNesterov) {
  sgd momentum({"p"}, {scalar1(1.0f)}, {.momentum = 0.9});
  auto p = run(momentum, 1.0f, {1.0f, 2.0f, 0.0f}, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.9f);    // buf = 1
  EXPECT_FLOAT_EQ(p[1], 0.61f);   // buf = 0.9 + 2 = 2.9
  EXPECT_FLOAT_EQ(p[2], 0.349f);  // buf = 2.61

  // The first step takes the gradient undamped, as PyTorch does.
  sgd damped({"p"}, {scalar1(1.0f)}, {.momentum = 0.9, .dampening = 0.5});
  p = run(damped, 1.0f, {1.0f, 2.0f}, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.9f);
  EXPECT_FLOAT_EQ(p[1], 0.71f);  // buf = 0.9 + 0.5 * 2 = 1.9

  sgd nesterov({"p"}, {scalar1(1.0f)}, {.momentum = 0.9, .nesterov = true});
  p = run(nesterov, 1.0f, {1.0f, 2.0f}, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.81f);            // g + 0.9 * buf = 1.9
  EXPECT_FLOAT_EQ(p[1], 0.349f);           // buf = 2.9; 2 + 0.9 * 2.9 = 4.61
  EXPECT_EQ(nesterov.state().size(), 2u);  // step and momentum_buffer/p
  EXPECT_FLOAT_EQ(nesterov.state().at("momentum_buffer/p").item<float>(), 2.9f);
}

TEST(Adam, ConstantGradientMovesByLrAndEpsSitsOutsideTheSquareRoot) {
  // With a constant gradient the bias-corrected moments are g and g^2 exactly, so each step moves p by
  // lr * g / (|g| + eps). eps = 0.5 with g = 0.5 halves the step; eps inside the root or before the bias
  // correction would not.
  adam opt({"p"}, {scalar1(1.0f)}, {.eps = 0.5});
  auto p = run(opt, 1.0f, {0.5f, 0.5f, 0.5f}, 0.1);
  EXPECT_NEAR(p[0], 0.95f, 1e-6f);
  EXPECT_NEAR(p[1], 0.90f, 1e-6f);
  EXPECT_NEAR(p[2], 0.85f, 1e-6f);
  auto state = opt.state();
  EXPECT_EQ(state.at("step").item<int64_t>(), 3);
  EXPECT_FLOAT_EQ(state.at("exp_avg/p").item<float>(), 0.5f * (1.0f - 0.9f * 0.9f * 0.9f));
  EXPECT_NEAR(state.at("exp_avg_sq/p").item<float>(), 0.25 * (1.0 - std::pow(0.999, 3)), 1e-10);
}

TEST(Adam, L2WeightDecayEntersTheGradient) {
  adam opt({"p"}, {scalar1(1.0f)}, {.weight_decay = 0.5});
  auto p = run(opt, 1.0f, {0.5f, 0.5f}, 0.1);
  EXPECT_NEAR(p[0], 0.9f, 1e-6f);  // g' = 1.0, a full lr step
  // Step 2 by hand: g' = 0.5 + 0.5 * 0.9 = 0.95; m = 0.09 + 0.095; v = 0.999e-3 + 0.9025e-3.
  const double m = 0.185, v = 0.0019015;
  const double expect = 0.9 - 0.1 / 0.19 * m / (std::sqrt(v) / std::sqrt(1 - 0.999 * 0.999) + 1e-8);
  EXPECT_NEAR(p[1], expect, 1e-6);
}

TEST(AdamW, DecoupledDecayIsLrTimesWd) {
  adam opt({"p"}, {scalar1(1.0f)}, {.eps = 0.0, .weight_decay = 0.5}, /*decoupled=*/true);
  EXPECT_EQ(opt.name(), "adamw");
  auto p = run(opt, 1.0f, {0.5f, 0.5f}, 0.1);
  EXPECT_NEAR(p[0], 0.85f, 1e-6f);  // 1 * (1 - 0.05) - 0.1
  EXPECT_NEAR(p[1], 0.85f * 0.95f - 0.1f, 1e-6f);
}

TEST(Lion, SignOfInterpolatedMomentum) {
  lion opt({"p"}, {scalar1(1.0f)});
  auto p = run(opt, 1.0f, {0.5f, -0.01f, -1.0f}, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.9f);  // u = 0.05
  EXPECT_FLOAT_EQ(p[1], 0.8f);  // m = 0.005; u = 0.0045 - 0.001 > 0
  EXPECT_FLOAT_EQ(p[2], 0.9f);  // m = 0.00485; u = 0.004365 - 0.1 < 0
  EXPECT_NEAR(opt.state().at("exp_avg/p").item<float>(), 0.99 * 0.00485 - 0.01, 1e-8);

  lion zero({"p"}, {scalar1(1.0f)}, {.weight_decay = 0.5});
  p = run(zero, 1.0f, {0.0f}, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.95f);  // sign(0) = 0: only the decay 1 - lr * wd acts
}

TEST(Optimizer, GroupsPickLrScaleAndWeightDecayByName) {
  const std::vector<std::string> names{"layers.0.weight", "layers.0.norm.weight", "layers.0.bias"};
  std::vector<array> params{scalar1(1.0f), scalar1(1.0f), scalar1(1.0f)};
  adam opt(names, params, {.eps = 0.0, .weight_decay = 0.5}, true,
           {{"*norm*", 1.0, 0.0}, {"*.bias", 0.5, 0.0}, {"*", 2.0, {}}});
  EXPECT_DOUBLE_EQ(opt.weight_decay(0), 0.5);
  EXPECT_DOUBLE_EQ(opt.lr_scale(0), 2.0);
  EXPECT_DOUBLE_EQ(opt.weight_decay(1), 0.0);
  EXPECT_DOUBLE_EQ(opt.lr_scale(1), 1.0);
  EXPECT_DOUBLE_EQ(opt.weight_decay(2), 0.0);
  EXPECT_DOUBLE_EQ(opt.lr_scale(2), 0.5);
  opt.step(params, {scalar1(0.5f), scalar1(0.5f), scalar1(0.5f)}, 0.1);
  EXPECT_NEAR(params[0].item<float>(), 1.0f * (1 - 0.2f * 0.5f) - 0.2f, 1e-6f);
  EXPECT_NEAR(params[1].item<float>(), 0.9f, 1e-6f);
  EXPECT_NEAR(params[2].item<float>(), 0.95f, 1e-6f);
}

TEST(Optimizer, GlobMatch) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*.bias", "model.layers.3.mlp.bias"));
  EXPECT_FALSE(glob_match("*.bias", "model.bias_scale"));
  EXPECT_TRUE(glob_match("*norm*", "model.layers.0.input_layernorm.weight"));
  EXPECT_TRUE(glob_match("layers.?.w", "layers.7.w"));
  EXPECT_FALSE(glob_match("layers.?.w", "layers.17.w"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_FALSE(glob_match("", "x"));
}

TEST(Optimizer, StateRoundTripResumesBitIdentically) {
  const std::vector<std::string> names{"w", "b"};
  const std::vector<array> init{random::normal({1, 0}, {64, 33}), random::normal({1, 1}, {33})};
  auto grads_at = [](int step) {
    return std::vector<array>{random::normal({2, uint64_t(step)}, {64, 33}),
                              random::normal({3, uint64_t(step)}, {33})};
  };
  for (const char* kind : {"sgd", "adam", "adamw", "lion"}) {
    SCOPED_TRACE(kind);
    auto straight = make_optimizer(kind, names, init, 0.1);
    std::vector<array> p1 = init;
    for (int s = 0; s < 6; ++s) straight->step(p1, grads_at(s), 0.01);

    auto first = make_optimizer(kind, names, init, 0.1);
    std::vector<array> p2 = init;
    for (int s = 0; s < 3; ++s) first->step(p2, grads_at(s), 0.01);
    auto resumed = make_optimizer(kind, names, init, 0.1);
    resumed->load_state(first->state());
    EXPECT_EQ(resumed->steps_taken(), 3);
    for (int s = 3; s < 6; ++s) resumed->step(p2, grads_at(s), 0.01);
    for (size_t i = 0; i < p1.size(); ++i) {
      EXPECT_EQ(p1[i].to_vector<float>(), p2[i].to_vector<float>());
    }
    const auto a = straight->state(), b = resumed->state();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [key, value] : a)
      EXPECT_EQ(value.to_vector<float>(), b.at(key).to_vector<float>()) << key;
  }
}

TEST(Optimizer, LoadStateRejectsMismatchesAndLeavesStateAlone) {
  std::vector<array> params{zeros({2, 3})};
  adam opt({"w"}, params);
  auto good = opt.state();
  auto missing = good;
  missing.erase("exp_avg/w");
  EXPECT_THROW(opt.load_state(missing), std::invalid_argument);
  auto extra = good;
  extra.emplace("exp_avg/v", zeros({2, 3}));
  EXPECT_THROW(opt.load_state(extra), std::invalid_argument);
  auto shaped = good;
  shaped.at("exp_avg_sq/w") = zeros({3, 2});
  EXPECT_THROW(opt.load_state(shaped), std::invalid_argument);
  auto step = good;
  step.at("step") = array::from(std::vector<int64_t>{-1}, {});
  EXPECT_THROW(opt.load_state(step), std::invalid_argument);
  EXPECT_EQ(opt.steps_taken(), 0);
}

TEST(Optimizer, StepValidatesAndLeavesCallersArraysUnchanged) {
  const array p0 = array::from({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, {2, 3});
  std::vector<array> params{p0};
  sgd opt({"w"}, params);
  // A transposed view is a valid (non-contiguous) gradient.
  const array g = transpose(array::from({1.0f, 4.0f, 2.0f, 5.0f, 3.0f, 6.0f}, {3, 2}));
  opt.step(params, {g}, 1.0);
  EXPECT_EQ(params[0].to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(p0.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_THROW(opt.step(params, {zeros({3, 2})}, 1.0), std::invalid_argument);
  EXPECT_THROW(opt.step(params, {}, 1.0), std::invalid_argument);
  EXPECT_THROW(opt.step(params, {zeros({2, 3}, dtype::f16)}, 1.0), std::invalid_argument);
  EXPECT_THROW(opt.step(params, {zeros({2, 3})}, -1.0), std::invalid_argument);
  EXPECT_EQ(opt.steps_taken(), 1);
}

TEST(Optimizer, ConstructionErrors) {
  std::vector<array> one{zeros({2})};
  EXPECT_THROW(sgd({"a", "b"}, one), std::invalid_argument);
  EXPECT_THROW(sgd({"a", "a"}, {zeros({2}), zeros({2})}), std::invalid_argument);
  EXPECT_THROW(sgd({"a"}, {zeros({2}, dtype::bf16)}), std::invalid_argument);
  EXPECT_THROW(sgd({"a"}, one, {.nesterov = true}), std::invalid_argument);
  EXPECT_THROW(sgd({"a"}, one, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), std::invalid_argument);
  EXPECT_THROW(adam({"a"}, one, {.beta1 = 1.0}), std::invalid_argument);
  EXPECT_THROW(adam({"a"}, one, {.eps = -1.0}), std::invalid_argument);
  EXPECT_THROW(lion({"a"}, one, {.weight_decay = -0.1}), std::invalid_argument);
  EXPECT_THROW(sgd({"a"}, one, {}, {{"*", -1.0, {}}}), std::invalid_argument);
  EXPECT_THROW(make_optimizer("adagrad", {"a"}, one), std::invalid_argument);
}

TEST(Optimizer, ResultsDoNotDependOnThreadCount) {
  const std::vector<array> init{random::normal({5, 0}, {300000})};
  const std::vector<array> grads{random::normal({6, 0}, {300000})};
  const int saved = num_threads();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    adam opt({"w"}, init, {.weight_decay = 0.1}, true);
    std::vector<array> p = init;
    opt.step(p, grads, 1e-3);
    opt.step(p, grads, 1e-3);
    results.push_back(p[0].to_vector<float>());
  }
  set_num_threads(saved);
  EXPECT_EQ(results[0], results[1]);
}

}  // namespace
}  // namespace mlxd::train
