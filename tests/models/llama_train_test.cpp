// The training forward: equal to the inference forward, packing equal to running samples one by one (loss
// and every gradient), and every parameter's gradient against finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include "grad_check.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_train.h"
#include "tiny_model.h"

namespace mlxd::models {
namespace {

using namespace tiny;

std::vector<array> gather(const std::map<std::string, array>& w, const std::vector<std::string>& names) {
  std::vector<array> out;
  for (const auto& n : names) out.push_back(w.at(n));
  return out;
}

TEST(LlamaTrain, MatchesInferenceForwardOnGoldenModels) {
  for (const char* name :
       {"llama_gqa", "qwen2_bias_tied", "qwen3_qk_norm", "llama3_rope_scaling", "mistral_linear_rope"}) {
    SCOPED_TRACE(name);
    const std::string dir = std::string(MLXD_GOLDEN_DIR) + "/" + name;
    const llama_config config = load_llama_config(dir);
    const auto weights = load_model_weights(dir).tensors;
    const llama_model model(config, weights);
    const std::vector<int32_t> tokens{3, 17, 5, 29, 0, 11, 38, 2, 7};
    kv_cache cache = model.make_cache(16);
    const array want = model.forward(tokens, cache);  // [T, vocab]
    const array got = training_logits(config, weights, make_train_batch(i32(tokens, {1, 9})));
    EXPECT_LE(max_abs_diff(reshape(got, want.shape()), want), 1e-5);
  }
}

TEST(LlamaTrain, PackedRowsMatchSamplesOneByOne) {
  const llama_config c = tiny_config(true, false);
  const auto w = random_weights(c, 7);
  // Row 0 packs samples A (3 tokens) and B (4); row 1 holds C (5) and one padding token with its own segment.
  const array packed_tokens = i32({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 3, 5, 0}, {2, 7});
  const array packed_segments = i32({0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1}, {2, 7});
  const array packed_labels = i32({2, 3, -100, 5, 6, 7, -100, 9, 10, 0, 3, -100, -100, -100}, {2, 7});
  const std::vector<std::vector<int32_t>> samples{{1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 0, 3}};
  const std::vector<std::vector<int32_t>> sample_labels{{2, 3, -100}, {5, 6, 7, -100}, {9, 10, 0, 3, -100}};
  const train_batch packed = make_train_batch(packed_tokens, packed_segments);
  EXPECT_EQ(packed.positions.to_vector<int32_t>(),
            (std::vector<int32_t>{0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1}));

  const auto names = llama_param_names(c);
  int64_t packed_count = 0;
  auto [packed_loss, packed_grads] = value_and_grad(
      [&](const std::vector<array>& p) {
        const token_loss l =
            masked_cross_entropy(training_logits(c, bind_params(names, p), packed), packed_labels);
        packed_count = l.n_tokens;
        return l.sum;
      },
      gather(w, names));
  double loss_sum = 0;
  int64_t count = 0;
  std::vector<array> grads_sum;
  for (size_t s = 0; s < samples.size(); ++s) {
    const auto n = static_cast<int64_t>(samples[s].size());
    const train_batch one = make_train_batch(i32(samples[s], {1, n}));
    auto [loss, grads] = value_and_grad(
        [&](const std::vector<array>& p) {
          const token_loss l = masked_cross_entropy(training_logits(c, bind_params(names, p), one),
                                                    i32(sample_labels[s], {1, n}));
          count += l.n_tokens;
          return l.sum;
        },
        gather(w, names));
    loss_sum += loss.item<float>();
    if (grads_sum.empty()) {
      grads_sum = grads;
    } else {
      for (size_t i = 0; i < grads.size(); ++i) grads_sum[i] = add(grads_sum[i], grads[i]);
    }
  }
  EXPECT_EQ(packed_count, 9);
  EXPECT_EQ(count, 9);
  EXPECT_NEAR(packed_loss.item<float>(), loss_sum, 1e-5 * std::fabs(loss_sum));
  for (size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE(names[i]);
    EXPECT_LE(max_abs_diff(packed_grads[i], grads_sum[i]), 1e-5);
  }
}

class LlamaTrainGrad : public ::testing::TestWithParam<std::pair<bool, bool>> {};

TEST_P(LlamaTrainGrad, EveryParameterMatchesFiniteDifferences) {
  const auto [qwen_features, tied] = GetParam();
  const llama_config c = tiny_config(qwen_features, tied);
  const auto w = random_weights(c, 11);
  const train_batch batch = make_train_batch(i32({1, 4, 9, 2, 7, 3, 0, 10, 5, 5, 8, 6}, {2, 6}),
                                             i32({0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0}, {2, 6}));
  const array labels = i32({4, 9, -100, 7, 3, 1, 10, 5, 5, 8, 6, -100}, {2, 6});
  const auto names = llama_param_names(c);
  const loss_fn f = [&](const std::vector<array>& p) {
    return masked_cross_entropy(training_logits(c, bind_params(names, p), batch), labels).sum;
  };
  // A small step: the loss is strongly curved at these weights, and it sums only a few tokens, so its f32
  // rounding divided by the step stays below atol.
  EXPECT_TRUE(grad_check::check_grad(f, gather(w, names), {.step = 1e-3, .rtol = 1e-2, .atol = 1e-2}));
}

INSTANTIATE_TEST_SUITE_P(Configs, LlamaTrainGrad,
                         ::testing::Values(std::pair{false, false}, std::pair{true, true}));

TEST(LlamaTrain, ParamNamesFollowTheConfig) {
  const auto plain = llama_param_names(tiny_config(false, false));
  EXPECT_EQ(plain.size(), 1 + 2 * 9 + 2u);
  EXPECT_EQ(plain.back(), "lm_head.weight");
  const auto qwen = llama_param_names(tiny_config(true, true));
  EXPECT_EQ(qwen.size(), 1 + 2 * 14 + 1u);
  EXPECT_EQ(qwen.back(), "model.norm.weight");
}

TEST(LlamaTrain, MaskedLossCountsOnlyLabelledTokens) {
  const array logits = random::normal({3, 0}, {2, 3, 5});
  const array labels = i32({1, -100, 4, -100, -100, 0}, {2, 3});
  const token_loss l = masked_cross_entropy(logits, labels);
  EXPECT_EQ(l.n_tokens, 3);
  const array each = cross_entropy(logits, labels);
  EXPECT_NEAR(l.sum.item<float>(), sum(each).item<float>(), 1e-6);
  EXPECT_GT(l.sum.item<float>(), 0.0f);
}

TEST(LlamaTrain, RejectsBadInput) {
  const llama_config c = tiny_config(false, false);
  auto w = random_weights(c, 3);
  EXPECT_THROW(training_logits(c, w, make_train_batch(i32({1, 11}, {1, 2}))), std::invalid_argument);
  EXPECT_THROW(make_train_batch(i32({1, 2}, {2})), std::invalid_argument);
  EXPECT_THROW(make_train_batch(i32({1, 2}, {1, 2}), i32({0, 0, 0}, {1, 3})), std::invalid_argument);
  w.erase("model.norm.weight");
  EXPECT_THROW(training_logits(c, w, make_train_batch(i32({1, 2}, {1, 2}))), std::invalid_argument);
  EXPECT_THROW(bind_params({"a"}, {}), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::models
