#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "mlxd/core/random.h"
#include "mlxd/engine/sampler.h"

namespace mlxd::engine {
namespace {

std::vector<float> random_logits(uint64_t seed, int n, float scale = 2.0f) {
  return random::normal({seed}, {n}, 0.0f, scale).to_vector<float>();
}

// Frequencies of `draws` samples.
std::vector<double> frequencies(sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<double> f(logits.size(), 0);
  for (int i = 0; i < draws; ++i) f[s.sample(logits, {}).id] += 1.0 / draws;
  return f;
}

std::vector<double> softmax(const std::vector<float>& x, double temperature) {
  const double m = *std::max_element(x.begin(), x.end());
  std::vector<double> p(x.size());
  double z = 0;
  for (size_t i = 0; i < x.size(); ++i) z += p[i] = std::exp((x[i] - m) / temperature);
  for (double& v : p) v /= z;
  return p;
}

TEST(Sampler, GreedyPicksTheArgmaxAndReportsLogprobs) {
  const auto logits = random_logits(1, 50);
  const int best = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  sampling_params p;
  p.temperature = 0;
  p.top_logprobs = 3;
  sampler s(p, 50);
  const auto r = s.sample(logits, {});
  EXPECT_EQ(r.id, best);
  const auto probs = softmax(logits, 1.0);
  EXPECT_NEAR(r.logprob, std::log(probs[best]), 1e-5);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].id, best);
  EXPECT_GE(r.top[0].logprob, r.top[1].logprob);
  EXPECT_GE(r.top[1].logprob, r.top[2].logprob);
  p.temperature = 1;
  p.top_k = 1;
  EXPECT_EQ(sampler(p, 50).sample(logits, {}).id, best);  // top-k 1 is greedy too
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  const auto logits = random_logits(2, 100, 0.5f);
  sampling_params p;
  p.seed = 42;
  sampler a(p, 100), b(p, 100);
  p.seed = 43;
  sampler c(p, 100);
  int differ = 0;
  for (int i = 0; i < 50; ++i) {
    const int x = a.sample(logits, {}).id;
    EXPECT_EQ(x, b.sample(logits, {}).id);
    differ += x != c.sample(logits, {}).id;
  }
  EXPECT_GT(differ, 10);
}

TEST(Sampler, TemperatureSamplesTheSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
  for (const float t : {1.0f, 0.5f, 2.0f}) {
    sampling_params p;
    p.temperature = t;
    p.seed = 7;
    sampler s(p, 5);
    const auto f = frequencies(s, logits, 40000);
    const auto want = softmax(logits, t);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(f[i], want[i], 0.01) << "t=" << t << " token " << i;
  }
}

TEST(Sampler, TopKTopPAndMinPCutTheTail) {
  const std::vector<float> logits = {3.0f, 2.0f, 1.0f, 0.0f, -1.0f};  // p ~ .64 .24 .09 .03 .01
  const auto probs = softmax(logits, 1.0);
  sampling_params p;
  p.seed = 3;
  p.top_k = 2;
  auto f = frequencies(*std::make_unique<sampler>(p, 5), logits, 20000);
  EXPECT_EQ(f[2] + f[3] + f[4], 0.0);
  EXPECT_NEAR(f[0], probs[0] / (probs[0] + probs[1]), 0.015);
  p.top_k = 0;
  p.top_p = 0.8f;  // .64 < .8 <= .88: keeps tokens 0 and 1
  f = frequencies(*std::make_unique<sampler>(p, 5), logits, 20000);
  EXPECT_EQ(f[2] + f[3] + f[4], 0.0);
  EXPECT_GT(f[1], 0.2);
  p.top_p = 1.0f;
  p.min_p = 0.1f;  // keeps p >= .064: tokens 0, 1, 2
  f = frequencies(*std::make_unique<sampler>(p, 5), logits, 20000);
  EXPECT_EQ(f[3] + f[4], 0.0);
  EXPECT_GT(f[2], 0.05);
}

TEST(Sampler, PenaltiesAndBiasFollowTheirDefinitions) {
  // Greedy choice shows the effect: token 0 leads by a margin the penalties overturn.
  const std::vector<float> logits = {2.0f, 1.5f, -1.0f};
  sampling_params p;
  p.temperature = 0;
  const std::vector<int32_t> history = {0, 0, 2};
  EXPECT_EQ(sampler(p, 3).sample(logits, history).id, 0);
  p.repetition_penalty = 1.5f;  // 2.0 / 1.5 = 1.33 < 1.5
  EXPECT_EQ(sampler(p, 3).sample(logits, history).id, 1);
  p.repetition_penalty = 1.0f;
  p.frequency_penalty = 0.3f;  // 2.0 - 2 * 0.3 = 1.4 < 1.5
  EXPECT_EQ(sampler(p, 3).sample(logits, history).id, 1);
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 0.6f;  // 2.0 - 0.6 = 1.4 < 1.5
  EXPECT_EQ(sampler(p, 3).sample(logits, history).id, 1);
  p.presence_penalty = 0.0f;
  p.logit_bias = {{2, 10.0f}};
  EXPECT_EQ(sampler(p, 3).sample(logits, history).id, 2);
  p.logit_bias = {{0, -INFINITY}, {1, -INFINITY}, {2, -INFINITY}};
  EXPECT_THROW(sampler(p, 3).sample(logits, {}), std::invalid_argument);
  // The reported logprob is the model's, not the penalised one.
  p.logit_bias = {{2, 10.0f}};
  EXPECT_NEAR(sampler(p, 3).sample(logits, {}).logprob, std::log(softmax(logits, 1.0)[2]), 1e-5);
}

TEST(Sampler, RejectsInvalidParameters) {
  auto bad = [](auto edit) {
    sampling_params p;
    edit(p);
    EXPECT_THROW(sampler(p, 10), std::invalid_argument);
  };
  bad([](sampling_params& p) { p.temperature = -1; });
  bad([](sampling_params& p) { p.top_p = 0; });
  bad([](sampling_params& p) { p.top_p = 1.5f; });
  bad([](sampling_params& p) { p.min_p = 2; });
  bad([](sampling_params& p) { p.top_k = -2; });
  bad([](sampling_params& p) { p.repetition_penalty = 0; });
  bad([](sampling_params& p) { p.top_logprobs = 21; });
  bad([](sampling_params& p) { p.logit_bias = {{10, 1.0f}}; });
  sampler ok(sampling_params{}, 10);
  EXPECT_THROW(ok.sample(std::vector<float>(9, 0.0f), {}), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::engine
