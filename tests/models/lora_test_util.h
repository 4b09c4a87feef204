// A tiny Llama and seeded adapters for the LoRA tests.
#pragma once

#include <map>
#include <string>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/lora.h"
#include "tiny_model.h"

namespace mlxd::models::lora_test {

using namespace tiny;

// Qwen features come with tied embeddings here.
inline llama_config tiny_config(bool qwen_features) {
  return tiny::tiny_config(qwen_features, qwen_features);
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
