#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_folder.h"

namespace mlxd::models {
namespace {

// Every tensor a stage of a config needs, by HF name, with its shape.
std::vector<std::pair<std::string, shape_t>> expected_tensors(const llama_config& c,
                                                              const llama_stage& stage) {
  const int64_t h = c.hidden_size, q = int64_t{c.n_heads} * c.head_dim,
                kv = int64_t{c.n_kv_heads} * c.head_dim;
  std::vector<std::pair<std::string, shape_t>> out;
  if (stage.embedding || (stage.head && c.tie_word_embeddings))
    out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  if (stage.head) out.push_back({"model.norm.weight", {h}});
  if (stage.head && !c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}});
  for (int l = stage.layer_begin; l < stage.layer_end; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {h}});
    out.push_back({p + "post_attention_layernorm.weight", {h}});
    out.push_back({p + "self_attn.q_proj.weight", {q, h}});
    out.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    out.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    out.push_back({p + "self_attn.o_proj.weight", {h, q}});
    if (c.attention_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {q}});
      out.push_back({p + "self_attn.k_proj.bias", {kv}});
      out.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    if (c.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
      out.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
    }
    out.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, h}});
    out.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, h}});
    out.push_back({p + "mlp.down_proj.weight", {h, c.intermediate_size}});
  }
  return out;
}

bool is_norm(const std::string& name) {
  return name.find("norm.weight") != std::string::npos;
}

}  // namespace

std::map<std::string, array> init_llama_weights(const llama_config& config, uint64_t seed) {
  std::map<std::string, array> weights;
  uint64_t index = 0;
  for (const auto& [tensor_name, shape] : expected_tensors(config, whole_model(config))) {
    weights[tensor_name] =
        is_norm(tensor_name) ? ones(shape) : random::normal(random::split({seed}, index), shape, 0.0f, 0.02f);
    ++index;
  }
  return weights;
}

llama_model load_llama(const std::filesystem::path& model_dir, const llama_load_options& options) {
  if (model_dir.extension() == ".gguf") return load_llama_gguf(model_dir, options);
  llama_config config = load_llama_config(model_dir);
  safetensors_load_options read;
  read.copy = !options.mmap;
  std::map<std::string, array> weights = load_llama_folder_weights(model_dir, config, read);
  return llama_model(std::move(config), weights);
}

llama_stage whole_model(const llama_config& config) {
  return {0, config.n_layers, true, true};
}

void check_stage(const llama_config& config, const llama_stage& stage) {
  if (stage.layer_begin < 0 || stage.layer_begin > stage.layer_end || stage.layer_end > config.n_layers) {
    throw std::invalid_argument("[llama] layers [" + std::to_string(stage.layer_begin) + ", " +
                                std::to_string(stage.layer_end) + ") are not a range of the model's " +
                                std::to_string(config.n_layers) + " layers");
  }
}

std::vector<std::pair<std::string, shape_t>> stage_tensors(const llama_config& config,
                                                           const llama_stage& stage) {
  check_stage(config, stage);
  return expected_tensors(config, stage);
}

// Validates names and shapes up front so a bad checkpoint fails at load with the tensor named.
void check_weights(const llama_config& config, const std::map<std::string, array>& weights,
                   const llama_stage& stage) {
  for (const auto& [tensor_name, shape] : stage_tensors(config, stage)) {
    auto it = weights.find(tensor_name);
    if (it == weights.end()) throw std::invalid_argument("[llama] missing weight " + tensor_name);
    if (it->second.shape() != shape) {
      throw std::invalid_argument("[llama] weight " + tensor_name + " is " + it->second.to_string() +
                                  ", config needs " + shape_to_string(shape));
    }
    const bool matrix = shape.size() == 2;
    if (!is_floating(it->second.type()) && !(matrix && is_quantized(it->second.type()))) {
      throw std::invalid_argument("[llama] weight " + tensor_name + " has dtype " + it->second.to_string() +
                                  (matrix ? ", not float or block-quantized" : ", not float"));
    }
  }
}

void check_weights(const llama_config& config, const std::map<std::string, array>& weights) {
  check_weights(config, weights, whole_model(config));
}

}  // namespace mlxd::models
