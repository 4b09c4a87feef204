// forward_batch (several sequences in one pass, as the server's engine loop runs them) against forward on
// each sequence alone: the same logits for prefill chunks and decode steps mixed in one batch, on float and
// block-quantized weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "mlxd/core/ops.h"
#include "mlxd/models/llama.h"

namespace mlxd::models {
namespace {

llama_config bias_config() {
  llama_config c;
  c.architecture = "Qwen2ForCausalLM";
  c.vocab_size = 50;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 6;
  c.max_position_embeddings = 64;
  c.attention_bias = true;
  return c;
}

float max_abs_diff(const array& a, const array& b) {
  const array ca = contiguous(a), cb = contiguous(b);
  EXPECT_EQ(ca.shape(), cb.shape());
  float d = 0;
  for (int64_t i = 0; i < ca.size(); ++i)
    d = std::max(d, std::abs(ca.data<float>()[i] - cb.data<float>()[i]));
  return d;
}

// Three sequences with different prompt lengths, fed in uneven chunks so that each batch mixes prefill rows
// and decode rows; every step's last-token logits must match the sequence run alone.
void check_batch_matches_alone(const llama_model& m, uint32_t seed, dtype kv = dtype::f32) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, m.config().vocab_size - 1);
  const std::vector<std::vector<int>> chunks = {{5, 1, 1, 1}, {2, 3, 1, 1}, {1, 1, 4, 1}};
  std::vector<std::vector<int32_t>> all(3);
  for (size_t s = 0; s < 3; ++s)
    for (int n : chunks[s])
      for (int i = 0; i < n; ++i) all[s].push_back(id(rng));
  std::vector<kv_cache> batch_caches, alone_caches;
  for (int s = 0; s < 3; ++s)
    batch_caches.push_back(m.make_cache(32, kv)), alone_caches.push_back(m.make_cache(32, kv));
  std::vector<size_t> pos(3, 0);
  for (size_t step = 0; step < 4; ++step) {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<kv_cache*> caches;
    for (size_t s = 0; s < 3; ++s) {
      const auto n = static_cast<size_t>(chunks[s][step]);
      tokens.emplace_back(all[s].begin() + static_cast<long>(pos[s]),
                          all[s].begin() + static_cast<long>(pos[s] + n));
      caches.push_back(&batch_caches[s]);
      pos[s] += n;
    }
    const array batched = m.forward_batch(tokens, caches);  // [3, vocab]
    ASSERT_EQ(batched.shape(), (shape_t{3, m.config().vocab_size}));
    for (size_t s = 0; s < 3; ++s) {
      const array alone = m.forward(tokens[s], alone_caches[s]);
      const auto t = alone.shape(0);
      const array last = slice_axis(alone, 0, t - 1, t);
      const array row = slice_axis(batched, 0, static_cast<int64_t>(s), static_cast<int64_t>(s) + 1);
      EXPECT_LE(max_abs_diff(row, last), 1e-5f) << "sequence " << s << " step " << step;
      EXPECT_EQ(batch_caches[s].length(), alone_caches[s].length());
    }
  }
}

TEST(LlamaBatch, MatchesEachSequenceAloneWithBiases) {
  const llama_config c = bias_config();
  check_batch_matches_alone(llama_model(c, init_llama_weights(c, 3)), 7);
}

TEST(LlamaBatch, MatchesEachSequenceAloneWithF16Caches) {
  const llama_config c = bias_config();
  check_batch_matches_alone(llama_model(c, init_llama_weights(c, 3)), 7, dtype::f16);
  check_batch_matches_alone(load_llama(std::string(MLXD_GOLDEN_DIR) + "/qwen3_qk_norm"), 11, dtype::f16);
}

TEST(LlamaBatch, MatchesEachSequenceAloneWithQkNormAndQuantizedWeights) {
  check_batch_matches_alone(load_llama(std::string(MLXD_GOLDEN_DIR) + "/qwen3_qk_norm"), 11);
  check_batch_matches_alone(load_llama(std::string(MLXD_GOLDEN_DIR) + "/llama_quant/model.gguf"), 13);
}

// A pipeline stage's layers over the decode rows of several sequences at once (a worker batching the steps
// that reach it together): each sequence's hidden states are bit-identical to its rows run alone, so a
// sharded generation does not depend on which sequences it met.
TEST(LlamaBatch, StageLayersOverSeveralSequencesEqualEachAloneBitForBit) {
  const llama_config c = bias_config();
  const auto w = init_llama_weights(c, 5);
  const llama_model stage(c, w, llama_stage{1, 3, false, true});
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  auto rows = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n * c.hidden_size));
    for (float& x : v) x = normal(rng);
    return array::from(v, {n, c.hidden_size});
  };
  std::vector<kv_cache> batch_caches, alone_caches;
  for (int s = 0; s < 4; ++s) {
    batch_caches.push_back(stage.make_cache(16)), alone_caches.push_back(stage.make_cache(16));
    const array prompt = rows(2 + s);  // prefilled alone, as the worker runs prompts
    stage.forward_layers(prompt, batch_caches.back());
    stage.forward_layers(prompt, alone_caches.back());
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<array> xs;
    std::vector<kv_cache*> caches;
    for (int s = 0; s < 4; ++s)
      xs.push_back(rows(1)), caches.push_back(&batch_caches[static_cast<size_t>(s)]);
    const std::vector<array> ys = stage.forward_layers_batch(xs, caches);
    ASSERT_EQ(ys.size(), 4u);
    for (size_t s = 0; s < 4; ++s) {
      const array alone = stage.forward_layers(xs[s], alone_caches[s]);
      EXPECT_EQ(max_abs_diff(ys[s], alone), 0.0f) << "sequence " << s << " step " << step;
      EXPECT_EQ(batch_caches[s].length(), alone_caches[s].length());
    }
  }
  kv_cache full = stage.make_cache(1);
  EXPECT_THROW(stage.forward_layers_batch({rows(2)}, {&full}), std::invalid_argument);
  EXPECT_THROW(stage.forward_layers_batch({rows(1), rows(1)}, {&full}), std::invalid_argument);
  EXPECT_THROW(stage.forward_layers_batch({array::from(std::vector<float>{1, 2}, {1, 2})}, {&full}),
               std::invalid_argument);
}

// Generation's prefill: the layers over the whole prompt, the LM head on the last row alone (40 rows: beyond
// the few-row products, so forward's head multiplies them as a GEMM and forward_last's as one row).
TEST(LlamaBatch, ForwardLastIsForwardsLastRowWithTheHeadOnThatRowAlone) {
  const llama_config c = bias_config();
  const llama_model m(c, init_llama_weights(c, 3));
  std::vector<int32_t> prompt(40);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7) % 50);
  kv_cache last_cache = m.make_cache(64), full_cache = m.make_cache(64), layer_cache = m.make_cache(64);
  const array last = m.forward_last(prompt, last_cache);
  ASSERT_EQ(last.shape(), (shape_t{1, c.vocab_size}));
  EXPECT_EQ(last_cache.length(), 40);
  const array full = m.forward(prompt, full_cache);
  EXPECT_LE(max_abs_diff(last, slice_axis(full, 0, 39, 40)), 1e-5f);
  const array y = m.forward_layers(m.embed(prompt), layer_cache);
  EXPECT_EQ(max_abs_diff(last, m.head(slice_axis(y, 0, 39, 40))), 0.0f);
  // The next step continues from the same cache.
  EXPECT_LE(max_abs_diff(m.forward({3}, last_cache), m.forward({3}, full_cache)), 1e-5f);
}

// A model of config c whose context holds the 600-token prompts below.
llama_model long_prompt_model(llama_config c, uint64_t seed) {
  c.max_position_embeddings = 600;
  return llama_model(c, init_llama_weights(c, seed));
}

// The hidden states of a 600-token prompt (token i being (i * step + 5) % 50) fed to the layers in one call.
array prompt_states(const llama_model& m, int step) {
  std::vector<int32_t> prompt(600);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * step + 5) % 50);
  return m.embed(prompt);
}

// forward_layers over x's rows fed `piece` at a time, joined.
array in_pieces(const llama_model& m, const array& x, kv_cache& cache, int64_t piece) {
  std::vector<array> parts;
  for (int64_t b = 0; b < x.shape(0); b += piece)
    parts.push_back(m.forward_layers(slice_axis(x, 0, b, std::min(x.shape(0), b + piece)), cache));
  return concatenate(parts, 0);
}

// 600 prompt rows with 4 query heads per kv head stack 2400 query rows: attention runs in chunks of at most
// detail::query_rows (256) rows of one group, tokens [0, 256), [256, 512) and [512, 600), the mask sliced to
// match. (forward feeds the layers 512 tokens at a time; forward_layers takes them all.) The hidden states
// equal those of the rows fed 100 at a time (chunks of 100 tokens per group) and one by one, on both caches.
TEST(LlamaBatch, ALongPromptAttendsInChunksOfQueryRows) {
  llama_config c = bias_config();
  c.n_kv_heads = 1;
  const llama_model m = long_prompt_model(c, 4);
  const array x = prompt_states(m, 13);
  for (const dtype kv : {dtype::f32, dtype::f16}) {
    kv_cache whole = m.make_cache(600, kv), pieces = m.make_cache(600, kv), steps = m.make_cache(600, kv);
    const array all = m.forward_layers(x, whole);
    EXPECT_LE(max_abs_diff(all, in_pieces(m, x, pieces, 100)), 1e-5f) << name(kv);
    EXPECT_LE(max_abs_diff(all, in_pieces(m, x, steps, 1)), 1e-4f) << name(kv);
  }
}

// With 8 kv heads and 600 keys a score row is 19200 bytes, so 4 MiB of scores hold 218 query rows: tokens
// [0, 218), [218, 436) and [436, 600) are attended in turn. The hidden states equal those of 100-row pieces.
TEST(LlamaBatch, ManyKeysAttendInFewerQueryRows) {
  llama_config c = bias_config();
  c.n_heads = 8;
  c.n_kv_heads = 8;
  const llama_model m = long_prompt_model(c, 6);
  const array x = prompt_states(m, 11);
  for (const dtype kv : {dtype::f32, dtype::f16}) {
    kv_cache whole = m.make_cache(600, kv), pieces = m.make_cache(600, kv);
    EXPECT_LE(max_abs_diff(m.forward_layers(x, whole), in_pieces(m, x, pieces, 100)), 1e-5f) << name(kv);
  }
}

// A 600-row prompt through an MLP of 2048 (a [600, 2048] f32 intermediate is 4.7 MiB) goes in blocks of 504
// and 96 rows; the hidden states equal those of two 300-row prompts, whose MLP takes each in one block.
TEST(LlamaBatch, APromptRunsTheMlpInBlocksOfRows) {
  llama_config c = bias_config();
  c.intermediate_size = 2048;
  const llama_model m = long_prompt_model(c, 5);
  const array x = prompt_states(m, 7);
  kv_cache whole = m.make_cache(600), halves = m.make_cache(600);
  EXPECT_LE(max_abs_diff(m.forward_layers(x, whole), in_pieces(m, x, halves, 300)), 1e-5f);
}

TEST(LlamaBatch, RefusesBadArguments) {
  const llama_config c = bias_config();
  const llama_model m(c, init_llama_weights(c, 3));
  kv_cache cache = m.make_cache(4);
  EXPECT_THROW(m.forward_batch({}, {}), std::invalid_argument);
  EXPECT_THROW(m.forward_batch({{1}}, {}), std::invalid_argument);
  EXPECT_THROW(m.forward_batch({{}}, {&cache}), std::invalid_argument);
  EXPECT_THROW(m.forward_batch({{1, 2, 3, 4, 5}}, {&cache}), std::invalid_argument);
  EXPECT_THROW(m.forward_batch({{99}}, {&cache}), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::models
