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

}  // namespace mlxd::random
