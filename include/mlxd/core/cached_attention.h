// Attention of a few new query rows over a key/value cache, the decode step's attention. One pass per query
// row reads the cached keys and values as stored (f32 or f16, widened in registers): no f32 copy of an f16
// cache, no score matrix per block, no mask array.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"

namespace mlxd {

// q [n_kv, group * T, head_dim] (f32; the query heads sharing kv head h stacked, row g * T + t is token t of
// head g), keys and values [n_kv, S, head_dim], f32 or f16, S >= T. The T queries are the last T positions:
// token t sees keys 0 .. S - T + t. Returns softmax(scale * q K^T) V over the visible keys as f32
// [n_kv, group * T, head_dim]. Rows of keys and values must be contiguous (any stride between heads, e.g.
// views of a preallocated cache). Inference only: nothing is recorded for autograd. The reference kernel
// level accumulates in double; the others compute scores, softmax and the weighted sum in f32.
array cached_attention(const array& q, const array& keys, const array& values, int64_t group, float scale);

}  // namespace mlxd
