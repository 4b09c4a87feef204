// The hyper-parameters of a Llama-family decoder (Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3), read from a
// Hugging Face config.json.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace mlxd::models {

enum class rope_scaling_type { none, linear, llama3 };

// MLX's affine quantization as an MLX-community config.json states it under "quantization": each group of
// group_size values of a row is w = scale * q + bias with q of `bits` bits. Modules may override it.
struct mlx_quantization {
  struct params {
    int bits = 0;        // 2, 3, 4, 5, 6 or 8
    int group_size = 0;  // 32, 64 or 128
  };
  params defaults;
  // By module path ("model.layers.0.mlp.down_proj"); nullopt: the config leaves the module unquantized.
  std::map<std::string, std::optional<params>> modules;
  // The params of the module whose weight is `weight_name` ("<module>.weight"), or nullopt.
  std::optional<params> of(const std::string& weight_name) const;
};

struct llama_config {
  std::string architecture;  // e.g. "LlamaForCausalLM"; "...ForSequenceClassification" reads as the CausalLM
  int num_labels = 0;        // > 0: a sequence classifier (reward model) with a [num_labels, hidden] "score"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // grouped-query attention: n_heads % n_kv_heads == 0
  int head_dim = 0;    // may differ from hidden_size / n_heads (Qwen3)
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  rope_scaling_type rope_scaling = rope_scaling_type::none;
  float rope_factor = 1.0f;  // linear and llama3
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  int rope_original_max_positions = 8192;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry biases (Qwen2)
  bool qk_norm = false;         // RMSNorm on each head of q and k before RoPE (Qwen3)
  // RoPE on interleaved pairs (x[2i], x[2i+1]) instead of halves: llama.cpp's layout for "llama" GGUF files,
  // whose converter permuted the q/k rows to match.
  bool rope_interleaved = false;
  // Set for an MLX-community folder; its quantized weights are dequantized at load (llama_folder.h), so a
  // loaded model holds plain weights and to_json leaves this out.
  std::optional<mlx_quantization> mlx_quantized;
};

// Parses config.json text; `source` names the file in errors. Throws std::invalid_argument naming the field
// for a missing or inconsistent value and for an architecture outside the Llama family.
llama_config parse_llama_config(const std::string& json_text, const std::string& source);
// Reads DIR/config.json.
llama_config load_llama_config(const std::filesystem::path& model_dir);
// The config as config.json text (the fields above, HF names).
std::string to_json(const llama_config& config);

}  // namespace mlxd::models
