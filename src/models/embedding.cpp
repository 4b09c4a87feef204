#include "mlxd/models/embedding.h"

#include <cmath>
#include <stdexcept>

namespace mlxd::models {

std::vector<float> mean_pooled_embedding(const llama_model& model, const std::vector<int32_t>& tokens) {
  if (tokens.empty()) throw std::invalid_argument("[mean_pooled_embedding] no tokens to embed");
  kv_cache cache = model.make_cache(static_cast<int>(tokens.size()));
  return mean_pooled(model.final_hidden(tokens, cache));
}

std::vector<float> mean_pooled(const array& final_hidden) {
  if (final_hidden.ndim() != 2 || final_hidden.shape(0) < 1)
    throw std::invalid_argument("[mean_pooled] expected hidden states [n_tokens, hidden], got " +
                                final_hidden.to_string());
  const array pooled = contiguous(mean(final_hidden, {0}));  // [hidden]
  const float* p = pooled.data<float>();
  std::vector<float> out(p, p + pooled.size());
  double norm = 0;
  for (float v : out) norm += static_cast<double>(v) * v;
  norm = std::sqrt(norm);
  if (norm > 0)
    for (float& v : out) v = static_cast<float>(v / norm);
  return out;
}

}  // namespace mlxd::models
