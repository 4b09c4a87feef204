// The Llama-family forward against logits from an independent float64 NumPy implementation
// (tests/models/golden/make_llama_golden.py), and the cache paths against the full forward.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"

namespace mlxd::models {
namespace {

const char* const cases[] = {"llama_gqa", "qwen2_bias_tied", "qwen3_qk_norm", "llama3_rope_scaling",
                             "mistral_linear_rope"};

struct golden {
  std::vector<int32_t> tokens;
  array logits;
};

golden read_golden(const std::string& name) {
  std::ifstream in(std::string(MLXD_GOLDEN_DIR) + "/" + name + "/expected.json");
  const auto j = nlohmann::json::parse(in);
  return {j.at("tokens").get<std::vector<int32_t>>(),
          array::from(j.at("logits").get<std::vector<double>>(), j.at("shape").get<shape_t>(), dtype::f32)};
}

::testing::AssertionResult close(const array& got, const array& want, double tol) {
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << got.to_string() << " vs " << want.to_string();
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    if (!(std::fabs(g[i] - w[i]) <= tol * (1 + std::fabs(w[i])))) {
      return ::testing::AssertionFailure() << "logit " << i << ": " << g[i] << " vs " << w[i];
    }
  }
  return ::testing::AssertionSuccess();
}

class LlamaGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(LlamaGolden, FullForwardMatchesReference) {
  const llama_model model = load_llama(std::string(MLXD_GOLDEN_DIR) + "/" + GetParam());
  const golden g = read_golden(GetParam());
  kv_cache cache = model.make_cache(16);
  EXPECT_TRUE(close(model.forward(g.tokens, cache), g.logits, 1e-4));
  EXPECT_EQ(cache.length(), static_cast<int>(g.tokens.size()));
}

TEST_P(LlamaGolden, CachedDecodeAndChunkedPrefillMatchTheFullForward) {
  const llama_model model = load_llama(std::string(MLXD_GOLDEN_DIR) + "/" + GetParam());
  const golden g = read_golden(GetParam());
  const auto n = static_cast<int64_t>(g.tokens.size());
  kv_cache one_by_one = model.make_cache(16);
  std::vector<array> rows;
  for (int32_t t : g.tokens) rows.push_back(model.forward({t}, one_by_one));
  EXPECT_TRUE(close(concatenate(rows, 0), g.logits, 1e-4));
  kv_cache chunked = model.make_cache(16);
  const array first = model.forward({g.tokens.begin(), g.tokens.begin() + 3}, chunked);
  const array rest = model.forward({g.tokens.begin() + 3, g.tokens.end()}, chunked);
  EXPECT_TRUE(close(concatenate({first, rest}, 0), g.logits, 1e-4));
  EXPECT_EQ(rest.shape(), (shape_t{n - 3, model.config().vocab_size}));
  // Rewinding and replaying the tail gives the same logits again.
  chunked.truncate(3);
  EXPECT_TRUE(close(model.forward({g.tokens.begin() + 3, g.tokens.end()}, chunked), rest, 1e-6));
  EXPECT_THROW(chunked.truncate(static_cast<int>(n) + 1), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Architectures, LlamaGolden, ::testing::ValuesIn(cases));

// GGUF files laid out as llama.cpp's converter does (make_llama_gguf.py): llama.cpp names, GGUF dim order,
// and q/k rows permuted for interleaved RoPE in the "llama" architecture. Same logits as the Hugging Face
// folder.
TEST(LlamaGguf, GgufFilesGiveTheReferenceLogits) {
  for (const char* name : {"llama_gqa", "qwen2_bias_tied"}) {
    const llama_model model = load_llama(std::string(MLXD_GOLDEN_DIR) + "/" + name + "/model.gguf");
    const golden g = read_golden(name);
    kv_cache cache = model.make_cache(16);
    EXPECT_TRUE(close(model.forward(g.tokens, cache), g.logits, 1e-4)) << name;
    kv_cache step = model.make_cache(16);
    std::vector<array> rows;
    for (int32_t t : g.tokens) rows.push_back(model.forward({t}, step));
    EXPECT_TRUE(close(concatenate(rows, 0), g.logits, 1e-4)) << name;
  }
  EXPECT_EQ(load_llama(std::string(MLXD_GOLDEN_DIR) + "/llama_gqa/model.gguf").config().rope_interleaved,
            true);
  EXPECT_EQ(
      load_llama(std::string(MLXD_GOLDEN_DIR) + "/qwen2_bias_tied/model.gguf").config().tie_word_embeddings,
      true);
}

TEST(Llama, BadWeightsAndInputsGiveClearErrors) {
  const std::string dir = std::string(MLXD_GOLDEN_DIR) + "/llama_gqa";
  const llama_config config = load_llama_config(dir);
  auto weights = init_llama_weights(config, 7);
  EXPECT_NO_THROW(llama_model(config, weights));
  auto missing = weights;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  try {
    llama_model m(config, missing);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << e.what();
  }
  auto wrong = weights;
  wrong["model.norm.weight"] = ones({17});
  try {
    llama_model m(config, wrong);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight is f32[17]"), std::string::npos) << e.what();
  }
  const llama_model model(config, weights);
  kv_cache cache = model.make_cache(4);
  EXPECT_THROW(model.forward({40}, cache), std::invalid_argument);  // vocab is 40
  EXPECT_THROW(model.forward({-1}, cache), std::invalid_argument);
  EXPECT_THROW(model.forward({1, 2, 3, 4, 5}, cache), std::invalid_argument);  // past the context
  EXPECT_EQ(cache.length(), 0);  // a rejected call changes nothing
  EXPECT_NO_THROW(model.forward({1, 2, 3, 4}, cache));
}

TEST(Llama, RandomInitIsSeededAndHalfPrecisionWeightsStayClose) {
  const llama_config config = load_llama_config(std::string(MLXD_GOLDEN_DIR) + "/qwen3_qk_norm");
  const auto a = init_llama_weights(config, 3), b = init_llama_weights(config, 3),
             c = init_llama_weights(config, 4);
  EXPECT_TRUE(array_equal(a.at("model.embed_tokens.weight"), b.at("model.embed_tokens.weight")));
  EXPECT_FALSE(array_equal(a.at("model.embed_tokens.weight"), c.at("model.embed_tokens.weight")));
  // bf16 weights run through the same forward within bf16's precision of the f32 result.
  const std::string dir = std::string(MLXD_GOLDEN_DIR) + "/llama_gqa";
  const llama_config gqa = load_llama_config(dir);
  const auto weights = load_model_weights(dir).tensors;
  std::map<std::string, array> half;
  for (const auto& [k, v] : weights) half[k] = astype(v, dtype::bf16);
  const golden g = read_golden("llama_gqa");
  kv_cache cache = llama_model(gqa, half).make_cache(16);
  EXPECT_TRUE(close(llama_model(gqa, half).forward(g.tokens, cache), g.logits, 5e-2));
}

}  // namespace
}  // namespace mlxd::models
