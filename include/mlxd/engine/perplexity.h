// Perplexity of a model on a token sequence, with the sliding window of Hugging Face's perplexity guide:
// windows of `context` tokens advance by `stride`; each window scores only the tokens no earlier window
// scored, so every token after the first is predicted once, from up to context-1 tokens before it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "mlxd/models/llama.h"

namespace mlxd::engine {

struct perplexity_options {
  int context = 0;  // tokens per window; 0 = the model's max_position_embeddings
  int stride = 0;   // tokens between window starts; 0 = context (disjoint windows)
  // Called after each window with the tokens read so far and the sequence length.
  std::function<void(int64_t done, int64_t total)> on_progress;
};

struct perplexity_result {
  double nll = 0;      // summed negative log-likelihood, nats
  int64_t tokens = 0;  // tokens scored
  int windows = 0;
  double perplexity() const;  // exp(nll / tokens)
};

// Throws std::invalid_argument for fewer than 2 tokens, ids outside the vocabulary, or a context or stride
// that is out of range (stride must be in [1, context]).
perplexity_result evaluate_perplexity(const models::llama_model& model, std::span<const int32_t> tokens,
                                      const perplexity_options& options = {});

}  // namespace mlxd::engine
