// A tiny Llama-family model with weights large enough that every path carries gradient, for the training
// and LoRA tests, and the small helpers they share.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "mlxd/core/random.h"
#include "mlxd/models/llama.h"

namespace mlxd::models::tiny {

// Two layers, hidden 8, grouped-query attention; Qwen3's q/k norms and attention biases when asked.
inline llama_config tiny_config(bool qwen_features, bool tied) {
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
  c.tie_word_embeddings = tied;
  c.attention_bias = qwen_features;
  c.qk_norm = qwen_features;
  return c;
}

// Weights N(0, 0.5), norms 1 + N(0, 0.1).
inline std::map<std::string, array> random_weights(const llama_config& c, uint64_t seed) {
  std::map<std::string, array> w;
  uint64_t stream = 0;
  for (const auto& [name, shape] : stage_tensors(c, whole_model(c))) {
    const bool norm = name.find("norm") != std::string::npos;
    w[name] = random::normal({seed, stream++}, shape, norm ? 1.0f : 0.0f, norm ? 0.1f : 0.5f);
  }
  return w;
}

inline array i32(const std::vector<int32_t>& v, const shape_t& shape) {
  return array::from(v, shape);
}

inline double max_abs_diff(const array& a, const array& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

}  // namespace mlxd::models::tiny
