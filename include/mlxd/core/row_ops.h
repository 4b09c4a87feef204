// Element functions over one contiguous row, run on the calling thread: for callers outside the array ops
// whose rows cost less than waking the kernel threads (the sampler's vocabulary-sized rows, once a token).
#pragma once

#include <span>

namespace mlxd {

// y[i] = exp(x[i]) at the active kernel level (the same values as the array op exp). Sizes must match.
void exp_row(std::span<const float> x, std::span<float> y);

// Writes m = max(x) and returns sum(exp(x - m)), in one read of x at the active kernel level (0 with
// m = -inf when every x is -inf). x is not empty.
float exp_sum_row(std::span<const float> x, float* m);

}  // namespace mlxd
