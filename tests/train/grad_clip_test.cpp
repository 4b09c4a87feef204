#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/train/grad_clip.h"

namespace mlxd::train {
namespace {

TEST(GradClip, NormOverAllGradients) {
  // sqrt(3^2 + 4^2 + 12^2) = 13
  std::vector<array> g{array::from({3.0f, 0.0f}, {2}), array::from({4.0f, 12.0f}, {1, 2})};
  EXPECT_DOUBLE_EQ(global_grad_norm(g), 13.0);
  EXPECT_DOUBLE_EQ(global_grad_norm({}), 0.0);
}

TEST(GradClip, ScalesByMaxNormOverNorm) {
  std::vector<array> g{array::from({3.0f, 0.0f}, {2}), array::from({4.0f, 12.0f}, {1, 2})};
  const array before = g[0];
  const clip_result r = clip_grad_norm(g, 6.5);
  EXPECT_DOUBLE_EQ(r.norm, 13.0);
  EXPECT_TRUE(r.finite);
  EXPECT_TRUE(r.clipped);
  const float scale = static_cast<float>(6.5 / (13.0 + 1e-6));
  EXPECT_EQ(g[0].to_vector<float>(), (std::vector<float>{3.0f * scale, 0.0f}));
  EXPECT_EQ(g[1].to_vector<float>(), (std::vector<float>{4.0f * scale, 12.0f * scale}));
  EXPECT_NEAR(global_grad_norm(g), 6.5, 1e-5);
  EXPECT_EQ(before.to_vector<float>(), (std::vector<float>{3.0f, 0.0f}));  // the caller's array is untouched
}

TEST(GradClip, BelowMaxNormLeavesGradientsAlone) {
  std::vector<array> g{array::from({3.0f, 4.0f}, {2})};
  const array before = g[0];
  const clip_result r = clip_grad_norm(g, 5.0);
  EXPECT_DOUBLE_EQ(r.norm, 5.0);
  EXPECT_FALSE(r.clipped);
  EXPECT_TRUE(g[0].shares_storage(before));
}

TEST(GradClip, NonFiniteIsReportedNotScaled) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    std::vector<array> g{array::from({1.0f, bad}, {2}), array::from({100.0f}, {1})};
    const clip_result r = clip_grad_norm(g, 1.0);
    EXPECT_FALSE(r.finite);
    EXPECT_FALSE(r.clipped);
    EXPECT_FALSE(std::isfinite(r.norm));
    EXPECT_EQ(g[1].item<float>(), 100.0f);
  }
}

TEST(GradClip, LargeAndStridedGradients) {
  // Many chunks of the parallel sum, and a transposed view; the reference sums in double serially.
  const array big = random::normal({9, 0}, {1000, 700});
  const array view = transpose(big);
  double ref = 0.0;
  for (float x : big.to_vector<float>()) ref += static_cast<double>(x) * x;
  EXPECT_NEAR(global_grad_norm({view}), std::sqrt(ref), 1e-9 * std::sqrt(ref));
}

TEST(GradClip, BadArguments) {
  std::vector<array> g{zeros({2})};
  EXPECT_THROW(clip_grad_norm(g, 0.0), std::invalid_argument);
  EXPECT_THROW(clip_grad_norm(g, NAN), std::invalid_argument);
  std::vector<array> h{zeros({2}, dtype::f16)};
  EXPECT_THROW(clip_grad_norm(h, 1.0), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::train
