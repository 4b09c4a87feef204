// Per-token log-probabilities of given labels under a model's logits, and their sums over completions.
#pragma once

#include "mlxd/core/array.h"

namespace mlxd::rlhf {

struct token_logprobs {
  array tokens;  // f32 [B, T]: log p(labels[b,t] | logits[b,t]) at valid positions, exactly 0 elsewhere
  array sums;    // f32 [B]: the sum of `tokens` over each row (0 for a row with no valid position)
  array counts;  // f32 [B]: valid positions per row
};

// logits [B, T, V] of any float dtype (position t already predicts labels[b, t]: shift before calling),
// labels [B, T] integer, mask [B, T] any dtype (nonzero = a completion token that counts; prompt and padding
// are 0). The log-softmax is computed in f32 whatever the dtype of the logits, as x - max - log(sum exp(x -
// max)). Masked positions are never read: their labels may be anything and their logits may be -inf or NaN
// without a NaN reaching the values or the gradient. Differentiable in logits. Throws std::invalid_argument
// for bad shapes or dtypes and for a valid label outside [0, V).
token_logprobs sequence_logprobs(const array& logits, const array& labels, const array& mask);

}  // namespace mlxd::rlhf
