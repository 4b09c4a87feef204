// The draw of a sampling step: one token from temperature-scaled logits cut by top-k, top-p and min-p.
//
// The candidates are the tokens in descending order of logit (ties: lower id first); top-k keeps the first k,
// top-p the shortest prefix whose mass passes top_p of the candidates' mass, min-p those with probability at
// least min_p times the largest. The token drawn is the one at which the running mass of the kept candidates,
// in that order, passes r times their total. No step sorts the whole vocabulary: one pass sums the mass by
// bucket of probability (the top bits of each p's float, 16 buckets to an octave), the walk goes down the
// buckets, and only the bucket where it stops is sorted; a step takes time linear in the vocabulary (the
// whole order was sorted before: 6 ms a token at a vocabulary of 32000, 33 ms at 151936).
#pragma once

#include <cstdint>
#include <span>

#include "mlxd/engine/sampler.h"

namespace mlxd::engine::detail {

// `x`: the logits after bias and penalties, with at least one finite; temperature > 0; r in [0, 1).
int32_t draw_token(std::span<const float> x, const sampling_params& p, double r);

}  // namespace mlxd::engine::detail
