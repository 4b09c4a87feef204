// final_hidden against forward (its LM head applied gives forward's logits, which the golden tests check
// against PyTorch), and mean_pooled_embedding against the pooling done by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/embedding.h"
#include "mlxd/models/llama.h"

namespace mlxd::models {
namespace {

const std::string golden = MLXD_GOLDEN_DIR;

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = id(rng);
  return t;
}

TEST(Embedding, FinalHiddenThroughTheHeadIsForward) {
  const auto weights = load_safetensors(golden + "/llama_gqa/model.safetensors").tensors;
  const llama_model m = load_llama(golden + "/llama_gqa");
  const auto tokens = random_tokens(7, m.config().vocab_size, 3);
  kv_cache a = m.make_cache(8), b = m.make_cache(8);
  const array hidden = m.final_hidden(tokens, a);  // [7, hidden]
  ASSERT_EQ(hidden.shape(), (shape_t{7, m.config().hidden_size}));
  const array via_head =
      contiguous(matmul(hidden, transpose(astype(weights.at("lm_head.weight"), dtype::f32))));
  const array logits = contiguous(m.forward(tokens, b));
  ASSERT_EQ(via_head.shape(), logits.shape());
  for (int64_t i = 0; i < logits.size(); ++i)
    EXPECT_NEAR(via_head.data<float>()[i], logits.data<float>()[i], 1e-4f) << i;
  EXPECT_EQ(a.length(), 7);
}

TEST(Embedding, MeanPooledAndUnitLength) {
  const llama_model m = load_llama(golden + "/qwen3_qk_norm");
  const auto tokens = random_tokens(5, m.config().vocab_size, 9);
  const std::vector<float> e = mean_pooled_embedding(m, tokens);
  ASSERT_EQ(e.size(), static_cast<size_t>(m.config().hidden_size));
  kv_cache cache = m.make_cache(5);
  const array h = contiguous(m.final_hidden(tokens, cache));  // [5, hidden]
  const int64_t dim = h.shape(1);
  std::vector<double> mean(static_cast<size_t>(dim), 0.0);
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t j = 0; j < dim; ++j) mean[static_cast<size_t>(j)] += h.data<float>()[t * dim + j] / 5.0;
  double norm = 0;
  for (double v : mean) norm += v * v;
  norm = std::sqrt(norm);
  double length = 0;
  for (int64_t j = 0; j < dim; ++j) {
    EXPECT_NEAR(e[static_cast<size_t>(j)], mean[static_cast<size_t>(j)] / norm, 1e-5) << j;
    length += static_cast<double>(e[static_cast<size_t>(j)]) * e[static_cast<size_t>(j)];
  }
  EXPECT_NEAR(length, 1.0, 1e-5);
  // Another text gives another direction; the same text the same one.
  EXPECT_EQ(mean_pooled_embedding(m, tokens), e);
  EXPECT_NE(mean_pooled_embedding(m, random_tokens(5, m.config().vocab_size, 10)), e);
  EXPECT_THROW(mean_pooled_embedding(m, {}), std::invalid_argument);
  EXPECT_THROW(mean_pooled_embedding(m, {m.config().vocab_size}), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::models
