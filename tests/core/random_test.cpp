#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "test_util.h"

namespace mlxd {
namespace {

TEST(Random, PhiloxMatchesTheKnownAnswer) {
  // Known-answer vector of Philox-4x32-10 from the Random123 distribution (kat_vectors): all-ones counter and
  // key.
  const uint32_t counter[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  uint32_t out[4];
  random::philox(counter, 0xffffffffffffffffull, out);
  EXPECT_EQ(out[0], 0x408f276du);
  EXPECT_EQ(out[1], 0x41c83b0eu);
  EXPECT_EQ(out[2], 0xa20bc7c6u);
  EXPECT_EQ(out[3], 0x6d5451fdu);
  const uint32_t zero[4] = {0, 0, 0, 0};
  random::philox(zero, 0, out);
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
}

TEST(Random, SameKeySameNumbersDifferentKeysDiffer) {
  EXPECT_TRUE(array_equal(random::uniform({5}, {1000}), random::uniform({5}, {1000})));
  EXPECT_FALSE(array_equal(random::uniform({5}, {1000}), random::uniform({6}, {1000})));
  EXPECT_FALSE(array_equal(random::uniform({5, 1}, {1000}), random::uniform({5, 2}, {1000})));
  const random::key k{5};
  EXPECT_FALSE(
      array_equal(random::normal(random::split(k, 0), {8}), random::normal(random::split(k, 1), {8})));
  // A prefix of a bigger draw equals the smaller draw: element i depends only on the key and i.
  EXPECT_TRUE(array_equal(slice_axis(random::normal(k, {100}), 0, 0, 10), random::normal(k, {10})));
}

TEST(Random, UniformAndNormalMoments) {
  const auto u = random::uniform({1}, {200000}, -2.0f, 3.0f).to_vector<double>();
  double mu = 0;
  for (double v : u) {
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 3.0);
    mu += v;
  }
  EXPECT_NEAR(mu / static_cast<double>(u.size()), 0.5, 0.02);
  const array n = random::normal({2}, {200000}, 1.0f, 2.0f);
  EXPECT_NEAR(mean(n).item<float>(), 1.0, 0.02);
  EXPECT_NEAR(std::sqrt(var(n).item<float>()), 2.0, 0.02);
  EXPECT_EQ(random::normal({3}, {4}, 0, 1, dtype::bf16).type(), dtype::bf16);
  EXPECT_THROW(random::uniform({1}, {2}, 1.0f, 1.0f), std::invalid_argument);
}

TEST(Random, CategoricalFollowsTheSoftmax) {
  const array logits = broadcast_to(log(array::from({0.1f, 0.2f, 0.7f, 0.0f}, {1, 4})), {60000, 4});
  const auto samples = random::categorical({4}, logits).to_vector<int64_t>();
  std::vector<double> freq(4, 0);
  for (int64_t s : samples) freq[s] += 1.0 / static_cast<double>(samples.size());
  EXPECT_NEAR(freq[0], 0.1, 0.01);
  EXPECT_NEAR(freq[1], 0.2, 0.01);
  EXPECT_NEAR(freq[2], 0.7, 0.01);
  EXPECT_EQ(freq[3], 0.0);  // probability 0 (-inf logit) is never drawn
}

TEST(Random, DropoutMaskComesFromTheKeyAndKeepsTheExpectation) {
  const array x = random::normal({7}, {1000, 3}, 1.0f, 0.5f);
  const float p = 0.25f;
  EXPECT_TRUE(array_equal(random::dropout({8}, x, p), random::dropout({8}, x, p)));
  EXPECT_FALSE(array_equal(random::dropout({8}, x, p), random::dropout({9}, x, p)));
  const auto in = x.to_vector<float>(), out = random::dropout({8}, x, p).to_vector<float>();
  double dropped = 0, ratio_sum = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (out[i] == 0.0f) {
      dropped += 1;
    } else {
      ASSERT_FLOAT_EQ(out[i], in[i] / (1.0f - p));  // survivors are scaled by 1 / (1 - p)
      ratio_sum += out[i] / in[i];
    }
  }
  EXPECT_NEAR(dropped / static_cast<double>(in.size()), p, 0.01);
  EXPECT_NEAR(ratio_sum / static_cast<double>(in.size()), 1.0, 0.01);  // E[out / x] = 1
  // Mean over many keys of dropout(ones) approaches 1 at every element.
  array acc = zeros({64});
  for (uint64_t s = 0; s < 400; ++s) acc = add(acc, random::dropout({s}, ones({64}), 0.5f));
  for (float v : divide(acc, scalar(400, dtype::f32)).to_vector<float>()) EXPECT_NEAR(v, 1.0, 0.2);
  EXPECT_TRUE(array_equal(random::dropout({8}, x, 0.0f), x));
  const array half = random::dropout({8}, astype(x, dtype::bf16), p);
  EXPECT_EQ(half.type(), dtype::bf16);
  EXPECT_THROW(random::dropout({8}, x, 1.0f), std::invalid_argument);
  EXPECT_THROW(random::dropout({8}, x, -0.1f), std::invalid_argument);
  EXPECT_THROW(random::dropout({8}, array::from(std::vector<int32_t>{1, 2}, {2}), p), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd
