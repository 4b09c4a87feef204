// Sentence embeddings from a decoder-only model, as served at POST /v1/embeddings.
#pragma once

#include <vector>

#include "mlxd/models/llama.h"

namespace mlxd::models {

// The embedding of `tokens` (non-empty, at most the context length): the mean over positions of the
// final-norm hidden states (llama_model::final_hidden), scaled to unit L2 norm (an all-zero mean stays zero).
// [hidden] floats. Uses a cache of its own; throws like forward.
std::vector<float> mean_pooled_embedding(const llama_model& model, const std::vector<int32_t>& tokens);
// The same from final-norm hidden states [n_tokens, hidden] computed elsewhere (a pipeline's last stage).
std::vector<float> mean_pooled(const array& final_hidden);

}  // namespace mlxd::models
