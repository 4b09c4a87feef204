#include <gtest/gtest.h>

#include "mlxd/models/llama_config.h"

namespace mlxd::models {
namespace {

const std::string qwen3 =
    R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 151936, "hidden_size": 1024,
  "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
  "head_dim": 128, "rms_norm_eps": 1e-06, "rope_theta": 1000000, "max_position_embeddings": 40960,
  "tie_word_embeddings": true, "rope_scaling": null})";

void expect_error(const std::string& text, const std::string& fragment) {
  try {
    parse_llama_config(text, "cfg.json");
    ADD_FAILURE() << "no error for " << text;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
}

TEST(LlamaConfig, ParsesARealQwen3Config) {
  const llama_config c = parse_llama_config(qwen3, "cfg.json");
  EXPECT_EQ(c.head_dim, 128);  // not hidden / heads = 64
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling, rope_scaling_type::none);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  const llama_config back = parse_llama_config(to_json(c), "round trip");
  EXPECT_EQ(back.head_dim, c.head_dim);
  EXPECT_EQ(back.architecture, c.architecture);
  EXPECT_EQ(back.vocab_size, c.vocab_size);
}

TEST(LlamaConfig, Llama3RopeScalingAndDefaults) {
  const llama_config c = parse_llama_config(
      R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
          "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "rope_theta": 500000.0,
          "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                           "original_max_position_embeddings": 8192, "rope_type": "llama3"}})",
      "cfg.json");
  EXPECT_EQ(c.rope_scaling, rope_scaling_type::llama3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FLOAT_EQ(c.rope_factor, 32.0f);
  EXPECT_EQ(c.rope_original_max_positions, 8192);
  EXPECT_TRUE(
      parse_llama_config(
          R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
                      "num_hidden_layers": 1, "num_attention_heads": 2})",
          "cfg.json")
          .attention_bias);
}

// MLX-community folders (packed uint32 weights with scales and biases) and other quantized HF folders are
// refused by their config, saying why and what to use instead.
TEST(LlamaConfig, RefusesFoldersOfOtherToolsQuantizedWeights) {
  const std::string base = qwen3.substr(0, qwen3.size() - 1);  // without the closing brace
  expect_error(base + R"(, "quantization_config": {"quant_method": "gptq", "bits": 4}})",
               "weights quantized by gptq, which mlxd does not read: use the unquantized");
  expect_error(base + R"(, "quantization_config": {"bits": 4}})", "quantized by an unnamed method");
  EXPECT_NO_THROW(parse_llama_config(base + R"(, "quantization": null})", "cfg.json"));
}

TEST(LlamaConfig, ReadsMlxQuantizationWithItsOverridesAndRefusesWhatMlxDoesNotPack) {
  const std::string base = qwen3.substr(0, qwen3.size() - 1);
  const std::string q = R"({"group_size": 64, "bits": 4, "model.layers.0.mlp.down_proj": {"group_size": 32,
      "bits": 8}, "lm_head": false})";
  // MLX repeats the object as "quantization_config", without a quant_method: that is not a foreign tool's.
  const llama_config c =
      parse_llama_config(base + R"(, "quantization": )" + q + R"(, "quantization_config": )" + q + "}", "c");
  ASSERT_TRUE(c.mlx_quantized);
  EXPECT_EQ(c.mlx_quantized->defaults.bits, 4);
  EXPECT_EQ(c.mlx_quantized->defaults.group_size, 64);
  EXPECT_EQ(c.mlx_quantized->of("model.layers.0.mlp.down_proj.weight")->bits, 8);
  EXPECT_EQ(c.mlx_quantized->of("model.layers.0.mlp.down_proj.weight")->group_size, 32);
  EXPECT_EQ(c.mlx_quantized->of("model.layers.0.mlp.up_proj.weight")->bits, 4);
  EXPECT_FALSE(c.mlx_quantized->of("lm_head.weight"));
  EXPECT_EQ(to_json(c).find("quantization"), std::string::npos);  // a loaded model holds plain weights
  EXPECT_FALSE(parse_llama_config(qwen3, "c").mlx_quantized);

  expect_error(base + R"(, "quantization": {"group_size": 64, "bits": 4, "mode": "mxfp4"}})",
               "MLX weights quantized in mode \"mxfp4\", which mlxd does not read");
  expect_error(base + R"(, "quantization": {"group_size": 64, "bits": 7}})",
               "quantization: bits 7 is not one MLX packs (2, 3, 4, 5, 6 or 8)");
  expect_error(base + R"(, "quantization": {"group_size": 48, "bits": 4}})",
               "group_size 48 is not 32, 64 or 128");
  expect_error(base + R"(, "quantization": {"bits": 4}})", "missing \"group_size\"");
  expect_error(base + R"(, "quantization": {"group_size": 64, "bits": 4, "lm_head": {"bits": 1,
      "group_size": 64}}})",
               "quantization of lm_head: bits 1 is not one MLX packs");
  expect_error(base + R"(, "quantization": {"group_size": 64, "bits": 4, "lm_head": true}})",
               "quantization of lm_head: true is not an override");
}

TEST(LlamaConfig, RejectsBadConfigsNamingTheField) {
  expect_error("{", "not valid JSON");
  expect_error(R"({"architectures": ["GPT2LMHeadModel"]})", "unsupported architecture \"GPT2LMHeadModel\"");
  expect_error(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10})", "missing \"hidden_size\"");
  expect_error(R"({"vocab_size": "ten"})", "\"vocab_size\" has the wrong type");
  expect_error(R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 3, "num_key_value_heads": 2})",
               "not a multiple of num_key_value_heads");
  expect_error(R"({"vocab_size": 0, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2})",
               "vocab_size must be positive");
  expect_error(R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "rope_scaling": {"rope_type": "yarn", "factor": 4}})",
               "unsupported rope_scaling type \"yarn\"");
}

}  // namespace
}  // namespace mlxd::models
