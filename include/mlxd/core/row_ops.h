// Element functions over one contiguous row, run on the calling thread: for callers outside the array ops
// whose rows cost less than waking the kernel threads (the sampler's vocabulary-sized rows, once a token).
#pragma once

#include <span>

namespace mlxd {

// y[i] = exp(x[i]) at the active kernel level (the same values as the array op exp). Sizes must match.
void exp_row(std::span<const float> x, std::span<float> y);

}  // namespace mlxd
