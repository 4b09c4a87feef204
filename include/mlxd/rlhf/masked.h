// Masked reductions shared by the RLHF losses.
//
// A mask has the shape of the values it selects and any dtype; a nonzero element marks a valid position.
// Values at masked positions never reach a result or a gradient, even when they are NaN or infinite. Every
// denominator is clamped to at least 1, so an all-masked input gives 0, not NaN.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"
#include "mlxd/core/ops.h"

namespace mlxd::rlhf {

// The mask as a boolean array (nonzero = valid). Throws std::invalid_argument, naming `fn`, when its shape
// is not `shape` or it holds a NaN.
array valid_mask(const array& mask, const shape_t& shape, const char* fn);
// Number of valid positions.
int64_t count_valid(const array& mask);

// x where the mask is set, 0 elsewhere (f32). Differentiable in x; masked positions get a zero gradient.
array masked_zero(const array& x, const array& mask);
// Sum of the valid values over `axes` (empty = all), f32.
array masked_sum(const array& x, const array& mask, const axes_t& axes = {});
// masked_sum / max(number of valid positions, 1) over `axes` (empty = all), f32.
array masked_mean(const array& x, const array& mask, const axes_t& axes = {});
// The sum of the valid values divided by max(global_count, 1): the share of this micro-batch in a mean over
// `global_count` valid tokens counted across every micro-batch and rank of a step, so that summing these
// shares (and their gradients) over micro-batches and ranks gives the mean of the whole step. f32 scalar.
array token_mean(const array& x, const array& mask, double global_count);

// x [B, T, ...] at the last valid position of each row (mask [B, T]): [B, ...] in x's dtype, e.g. a reward
// model's scalar head read at the last non-pad token. Differentiable in x. Throws std::invalid_argument for
// a row with no valid position (it has no last token) or bad shapes.
array last_valid(const array& x, const array& mask);

// (x - mean) / sqrt(var + eps) over the valid positions (mean kept when shift_mean is false), 0 at masked
// positions; var is the unbiased variance (n / (n - 1), as TRL's masked_whiten) when n > 1 and 0 when n == 1.
// Computed in double and returned as f32; not differentiable (advantages are constants of the loss). Throws
// std::invalid_argument on an empty mask, an eps <= 0 or non-finite valid values.
array whiten(const array& x, const array& mask, bool shift_mean = true, double eps = 1e-8);

}  // namespace mlxd::rlhf
