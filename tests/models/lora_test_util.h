// A tiny Llama and seeded adapters for the LoRA tests.
#pragma once

#include <map>
#include <string>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/lora.h"

namespace mlxd::models::lora_test {

inline llama_config tiny_config(bool qwen_features) {
  llama_config c;
  c.architecture = qwen_features ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = qwen_features;
  c.attention_bias = qwen_features;
  c.qk_norm = qwen_features;
  return c;
}

// Base weights N(0, 0.5), norms 1 + N(0, 0.1): every path carries gradient.
inline std::map<std::string, array> random_weights(const llama_config& c, uint64_t seed) {
  std::map<std::string, array> w;
  uint64_t stream = 0;
  for (const auto& [name, shape] : stage_tensors(c, whole_model(c))) {
    const bool norm = name.find("norm") != std::string::npos;
    w[name] = random::normal({seed, stream++}, shape, norm ? 1.0f : 0.0f, norm ? 0.1f : 0.5f);
  }
  return w;
}

// Adapters as after some training: A as init_lora_params makes it, B N(0, 0.3) (not zero).
inline std::map<std::string, array> trained_adapters(const llama_config& c, const lora_config& l,
                                                     uint64_t seed) {
  auto p = init_lora_params(c, l, seed);
  uint64_t stream = 100;
  for (auto& [name, a] : p)
    if (name.ends_with("lora_B.weight")) a = random::normal({seed, stream++}, a.shape(), 0.0f, 0.3f);
  return p;
}

inline std::map<std::string, array> merged(std::map<std::string, array> a,
                                           const std::map<std::string, array>& b) {
  for (const auto& [k, v] : b) a.insert_or_assign(k, v);
  return a;
}

inline lora_config all_targets(int64_t rank, double alpha, double dropout = 0.0) {
  lora_config l;
  l.rank = rank;
  l.alpha = alpha;
  l.dropout = dropout;
  l.targets = lora_modules();
  return l;
}

}  // namespace mlxd::models::lora_test
