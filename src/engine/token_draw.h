// The draw of a sampling step: one token from temperature-scaled logits cut by top-k, top-p and min-p.
//
// The candidates are the tokens in descending order of logit (ties: lower id first); top-k keeps the first k,
// top-p the shortest prefix whose mass passes top_p of the candidates' mass, min-p those with probability at
// least min_p times the largest. The token drawn is the one at which the running mass of the kept candidates,
// in that order, passes r times their total. No step sorts the whole vocabulary: selections split the tokens
// around pivots and sum each side, so a step takes time linear in the vocabulary (the whole order was sorted
// before, 2-5 ms a token at a vocabulary of 32000 and worse at 150000).
#pragma once

#include <cstdint>
#include <span>

#include "mlxd/engine/sampler.h"

namespace mlxd::engine::detail {

// `x`: the logits after bias and penalties, with at least one finite; temperature > 0; r in [0, 1).
int32_t draw_token(std::span<const float> x, const sampling_params& p, double r);

}  // namespace mlxd::engine::detail
