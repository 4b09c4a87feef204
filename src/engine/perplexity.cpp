#include "mlxd/engine/perplexity.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlxd/core/ops.h"

namespace mlxd::engine {

double perplexity_result::perplexity() const {
  return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : 0.0;
}

perplexity_result evaluate_perplexity(const models::llama_model& model, std::span<const int32_t> tokens,
                                      const perplexity_options& options) {
  const auto& config = model.config();
  const int context = options.context > 0 ? options.context : config.max_position_embeddings;
  const int stride = options.stride > 0 ? options.stride : context;
  if (tokens.size() < 2) throw std::invalid_argument("[perplexity] needs at least 2 tokens");
  if (context < 2 || context > config.max_position_embeddings)
    throw std::invalid_argument("[perplexity] context " + std::to_string(context) + " must be in [2, " +
                                std::to_string(config.max_position_embeddings) + "]");
  if (stride > context)
    throw std::invalid_argument("[perplexity] stride " + std::to_string(stride) + " exceeds the context " +
                                std::to_string(context));
  for (const int32_t t : tokens) {
    if (t < 0 || t >= config.vocab_size)
      throw std::invalid_argument("[perplexity] token id " + std::to_string(t) +
                                  " is outside the vocabulary of " + std::to_string(config.vocab_size));
  }

  perplexity_result r;
  const auto n = static_cast<int64_t>(tokens.size());
  int64_t scored_end = 1;  // tokens [1, scored_end) have been scored
  for (int64_t begin = 0; scored_end < n; begin += stride) {
    const int64_t end = std::min(begin + context, n);
    const std::vector<int32_t> window(tokens.begin() + begin, tokens.begin() + end);
    models::kv_cache cache = model.make_cache(static_cast<int>(window.size()));
    const array logp = contiguous(log_softmax(model.forward(window, cache), -1));  // [T, vocab]
    const float* rows = logp.data<float>();
    // Row i of the window predicts token begin+i+1; score only tokens no earlier window scored. The window's
    // first token has no context inside it and is not scored (disjoint windows skip one token each).
    for (int64_t target = std::max(scored_end, begin + 1); target < end; ++target) {
      r.nll -= rows[(target - 1 - begin) * config.vocab_size + tokens[target]];
      ++r.tokens;
    }
    scored_end = end;
    ++r.windows;
    if (options.on_progress) options.on_progress(end, n);
  }
  return r;
}

}  // namespace mlxd::engine
