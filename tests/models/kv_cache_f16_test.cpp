// The f16 KV cache: half the bytes, keys and values rounded to f16 on write, and attention over it (read a
// block at a time) close to the f32 cache's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "mlxd/core/ops.h"
#include "mlxd/models/llama.h"

namespace mlxd::models {
namespace {

// Grouped-query attention over more than one 256-position block of the cache.
llama_config f16_cache_config() {
  llama_config c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 640;
  return c;
}

std::vector<int32_t> random_ids(size_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> out(n);
  for (auto& t : out) t = id(rng);
  return out;
}

float max_abs(const array& a) {
  const array c = contiguous(a);
  float m = 0;
  for (int64_t i = 0; i < c.size(); ++i) m = std::max(m, std::abs(c.data<float>()[i]));
  return m;
}

TEST(KvCacheF16, HoldsHalfTheBytesAndRoundsOnWrite) {
  const kv_cache f32(3, 2, 8, 40), f16(3, 2, 8, 40, dtype::f16);
  EXPECT_EQ(f32.capacity_bytes(), 3u * 2 * 2 * 40 * 8 * 4);
  EXPECT_EQ(f16.capacity_bytes() * 2, f32.capacity_bytes());
  EXPECT_EQ(f16.type(), dtype::f16);
  EXPECT_THROW(kv_cache(1, 1, 4, 4, dtype::bf16), std::invalid_argument);

  kv_cache cache(1, 2, 8, 10, dtype::f16);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> kv(2 * 3 * 8);
  for (float& x : kv) x = normal(rng);
  const array k = array::from(kv, {2, 3, 8});
  cache.write(0, k, multiply(k, array(2.0f)));
  cache.commit(3);
  const array keys = cache.keys(0, 3);
  ASSERT_EQ(keys.type(), dtype::f16);
  EXPECT_EQ(astype(keys, dtype::f32).to_vector<float>(),
            astype(astype(k, dtype::f16), dtype::f32).to_vector<float>());
  EXPECT_EQ(astype(cache.values(0, 3, 1), dtype::f32).to_vector<float>(),
            astype(astype(slice_axis(multiply(k, array(2.0f)), 1, 1, 3), dtype::f16), dtype::f32)
                .to_vector<float>());
}

// Prefill of 300 positions (two cache blocks) then 20 decode steps on the same tokens: the f16 cache's logits
// stay within 5e-4 of the f32 cache's, relative to the largest logit: about f16's unit roundoff (2^-11), as
// keys and values are rounded once (measured 7.4e-5).
TEST(KvCacheF16, DecodeIsCloseToTheF32Cache) {
  const llama_config c = f16_cache_config();
  const llama_model m(c, init_llama_weights(c, 21));
  const std::vector<int32_t> ids = random_ids(320, c.vocab_size, 4);
  kv_cache full = m.make_cache(320), half = m.make_cache(320, dtype::f16);
  const std::vector<int32_t> prompt(ids.begin(), ids.begin() + 300);
  float worst = 0;
  auto compare = [&](const array& a, const array& b) {
    const array d = subtract(a, b);
    worst = std::max(worst, max_abs(d) / max_abs(a));
  };
  compare(m.forward(prompt, full), m.forward(prompt, half));
  for (size_t i = 300; i < ids.size(); ++i) compare(m.forward({ids[i]}, full), m.forward({ids[i]}, half));
  std::printf("f16 cache vs f32 cache: largest logit difference %.3g of the largest logit\n", worst);
  EXPECT_LT(worst, 5e-4f);
  EXPECT_GT(worst, 0.0f) << "the f16 cache should round something";
}

// Greedy decoding of the bundled model: the same 24 tokens with either cache.
TEST(KvCacheF16, GreedyTokensOfTheDefaultModelAreTheSame) {
  const llama_model m = load_llama(MLXD_DEFAULT_MODEL_DIR);
  auto greedy = [&](dtype kv) {
    std::vector<int32_t> out = {0, 1151, 262, 2078, 391, 3322};  // "In the beginning God created"
    kv_cache cache = m.make_cache(64, kv);
    array logits = m.forward(out, cache);
    for (int i = 0; i < 24; ++i) {
      const int64_t n = logits.shape(0);
      const std::vector<float> last = contiguous(slice_axis(logits, 0, n - 1, n)).to_vector<float>();
      out.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
      logits = m.forward({out.back()}, cache);
    }
    return out;
  };
  EXPECT_EQ(greedy(dtype::f16), greedy(dtype::f32));
}

}  // namespace
}  // namespace mlxd::models
