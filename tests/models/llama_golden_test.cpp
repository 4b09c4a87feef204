// The Llama-family forward against logits from an independent float64 NumPy implementation
// (tests/models/golden/make_llama_golden.py), and the cache paths against the full forward.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/gguf.h"
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

// The scalar level and the best one this CPU runs.
std::vector<kernel_level> test_levels() {
  if (best_kernel_level() == kernel_level::scalar) return {kernel_level::scalar};
  return {kernel_level::scalar, best_kernel_level()};
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

// A GGUF model whose matrices are Q8_0, Q4_0, Q4_K and Q6_K, each in several roles (make_llama_gguf.py, which
// quantizes with ggml's reference quantizers in NumPy). The weights stay quantized. expected.json holds the
// float64 logits of the dequantized weights ("logits") and of the same forward with each matrix product's
// input rounded to 8 bits per block as the fast kernels do ("logits_q8").
//  - Reference level (rows dequantized, sums in double): the exact logits within 1e-4, as for f32 models.
//  - Fast levels: rounding activations to 8 bits moves each value by up to amax / 254 of its block (~1% of
//  the
//    block's RMS for normal data); through two layers this moved these logits (RMS 1.05) by at most 0.039 and
//    0.5% in RMS. The bounds, 0.1 and 2%, allow for that with margin; the cache paths are held to the same.
//  - The scalar level also matches "logits_q8" within 1e-4: the fast path is exactly "round x to 8 bits, then
//    multiply" up to f32 rounding. (The SIMD levels' f32 kernels round differently, which here moves one
//    activation across an 8-bit rounding boundary at one position, so they are not held to that.)
TEST(LlamaGguf, QuantizedWeightsGiveTheDequantizedReferenceLogits) {
  const std::string path = std::string(MLXD_GOLDEN_DIR) + "/llama_quant/model.gguf";
  const gguf_file file = load_gguf(path, {.keep_quantized = true});
  EXPECT_EQ(file.tensors.at("blk.0.attn_q.weight").type(), dtype::q4_k);
  EXPECT_EQ(file.tensors.at("blk.0.attn_k.weight").type(), dtype::q6_k);
  EXPECT_EQ(file.tensors.at("blk.0.attn_v.weight").type(), dtype::q8_0);
  EXPECT_EQ(file.tensors.at("blk.0.attn_output.weight").type(), dtype::q4_0);
  const golden g = read_golden("llama_quant");
  std::ifstream in(std::string(MLXD_GOLDEN_DIR) + "/llama_quant/expected.json");
  const array logits_q8 = array::from(nlohmann::json::parse(in).at("logits_q8").get<std::vector<double>>(),
                                      g.logits.shape(), dtype::f32);
  const llama_model model = load_llama(path);
  {
    kernel_level_guard guard(kernel_level::reference);
    kv_cache cache = model.make_cache(16);
    EXPECT_TRUE(close(model.forward(g.tokens, cache), g.logits, 1e-4));
  }
  for (const kernel_level level : test_levels()) {
    SCOPED_TRACE(kernel_level_name(level));
    kernel_level_guard guard(level);
    kv_cache cache = model.make_cache(16);
    const array logits = model.forward(g.tokens, cache);
    const auto got = logits.to_vector<double>(), want = g.logits.to_vector<double>();
    double worst = 0, se = 0, ss = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(got[i] - want[i]));
      se += (got[i] - want[i]) * (got[i] - want[i]);
      ss += want[i] * want[i];
    }
    EXPECT_LE(worst, 0.1);
    EXPECT_LE(std::sqrt(se / ss), 0.02);
    if (level == kernel_level::scalar) {
      EXPECT_TRUE(close(logits, logits_q8, 1e-4));
    }
    kv_cache step = model.make_cache(16);
    std::vector<array> rows;
    for (int32_t t : g.tokens) rows.push_back(model.forward({t}, step));
    EXPECT_TRUE(close(concatenate(rows, 0), logits, 0.1));
  }
}

// llama_to_gguf lays a Hugging Face model out exactly as make_llama_gguf.py (llama.cpp's converter) does.
TEST(LlamaGguf, ConversionFromHuggingFaceMatchesTheConverter) {
  for (const char* name : {"llama_gqa", "qwen2_bias_tied"}) {
    const std::string dir = std::string(MLXD_GOLDEN_DIR) + "/" + name;
    const gguf_model converted = llama_to_gguf(load_llama_config(dir), load_model_weights(dir).tensors);
    const gguf_file reference = load_gguf(dir + "/model.gguf");
    ASSERT_EQ(converted.tensors.size(), reference.tensors.size()) << name;
    for (const auto& [tensor, a] : reference.tensors) {
      ASSERT_TRUE(converted.tensors.contains(tensor)) << tensor;
      EXPECT_TRUE(array_equal(converted.tensors.at(tensor), a)) << name << " " << tensor;
    }
    for (const auto& [key, value] : reference.metadata) {
      ASSERT_NE(converted.metadata.find(key), nullptr) << key;
      EXPECT_EQ(*converted.metadata.find(key), value) << key;
    }
  }
}

// Folder -> GGUF -> folder gives back every tensor bit for bit and the same config, for each architecture the
// GGUF layout holds (llama.cpp's q/k interleave undone for "llama"); the GGUF file itself gives the same
// logits.
TEST(LlamaGguf, ConversionRoundTripsThroughGguf) {
  const auto dir = std::filesystem::temp_directory_path() / ("mlxd_convert_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const char* name :
       {"llama_gqa", "qwen2_bias_tied", "qwen3_qk_norm", "mistral_linear_rope", "llama3_rope_scaling"}) {
    const std::string src = std::string(MLXD_GOLDEN_DIR) + "/" + name;
    const llama_config config = load_llama_config(src);
    const auto weights = load_model_weights(src).tensors;
    const gguf_model g = llama_to_gguf(config, weights);
    const auto file = dir / (std::string(name) + ".gguf");
    save_gguf(file, g.metadata, g.tensors);
    const hf_model back = llama_from_gguf(file);
    llama_config want = config;
    if (want.architecture == "MistralForCausalLM") want.architecture = "LlamaForCausalLM";  // GGUF: "llama"
    EXPECT_EQ(to_json(back.config), to_json(want)) << name;
    ASSERT_EQ(back.weights.size(), weights.size()) << name;
    for (const auto& [tensor, a] : weights) {
      ASSERT_TRUE(back.weights.contains(tensor)) << name << " " << tensor;
      EXPECT_TRUE(array_equal(back.weights.at(tensor), a)) << name << " " << tensor;
    }
    const golden gold = read_golden(name);
    const llama_model from_gguf = load_llama(file);
    kv_cache cache = from_gguf.make_cache(static_cast<int>(gold.tokens.size()));
    EXPECT_TRUE(close(from_gguf.forward(gold.tokens, cache), gold.logits, 1e-4)) << name;
  }
  std::filesystem::remove_all(dir);
}

// rope_freqs that no Llama-3 scaling gives, or of the wrong length, are refused by name, not run
// approximately.
TEST(LlamaGguf, RopeFreqsOutsideLlama3ScalingAreRefused) {
  const std::string src = std::string(MLXD_GOLDEN_DIR) + "/llama3_rope_scaling";
  gguf_model g = llama_to_gguf(load_llama_config(src), load_model_weights(src).tensors);
  const auto file =
      std::filesystem::temp_directory_path() / ("mlxd_rope_freqs_" + std::to_string(::getpid()) + ".gguf");
  g.tensors["rope_freqs.weight"] = array::from(std::vector<float>{1.0f, 3.0f, 1.5f, 7.0f}, {4});
  save_gguf(file, g.metadata, g.tensors);
  try {
    load_llama(file);
    ADD_FAILURE() << "loaded";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("do not follow Llama-3 RoPE scaling"), std::string::npos)
        << e.what();
  }
  g.tensors["rope_freqs.weight"] = array::from(std::vector<float>{1.0f, 2.0f}, {2});
  save_gguf(file, g.metadata, g.tensors);
  EXPECT_THROW(load_llama(file), std::invalid_argument);
  std::filesystem::remove(file);
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
