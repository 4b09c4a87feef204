// Seeded random numbers from a counter-based generator (Philox-4x32-10): element i of a draw depends only on
// the key and i, so results never depend on the thread count or on how the work is split.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"

namespace mlxd::random {

struct key {
  uint64_t seed = 0;
  uint64_t stream = 0;  // distinguishes independent draws from one seed
};

// A new independent key derived from `k` and `index`.
key split(key k, uint64_t index);

// The four 32-bit words of Philox-4x32-10 for a 128-bit counter and a 64-bit key (exposed for tests).
void philox(const uint32_t counter[4], uint64_t seed, uint32_t out[4]);

// Uniform in [lo, hi).
array uniform(key k, const shape_t& shape, float lo = 0.0f, float hi = 1.0f, dtype t = dtype::f32);
// Normal with the given mean and standard deviation (Box-Muller).
array normal(key k, const shape_t& shape, float mean = 0.0f, float stddev = 1.0f, dtype t = dtype::f32);
// One sample per row of `logits` along `axis` (unnormalised log-probabilities, -inf excluded): i64 indices.
array categorical(key k, const array& logits, int axis = -1);
// Inverted dropout: each element of float `x` is zeroed with probability p, the rest scaled by 1 / (1 - p),
// so the expectation is x. Element i's mask depends only on k and i (same key, same mask). p in [0, 1); p = 0
// returns x itself. Differentiable in x: the mask is a constant of the tape.
array dropout(key k, const array& x, float p);

}  // namespace mlxd::random
