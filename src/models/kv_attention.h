// Attention over an f16 KV cache, read a block of positions at a time: each block of keys and values is
// converted to f32 on its own, so a step never makes an f32 copy of the whole cache.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"
#include "mlxd/models/kv_cache.h"

namespace mlxd::models::detail {

// Positions per block: the f32 scratch of one block is [n_kv_heads, kv_block, head_dim].
inline constexpr int64_t kv_block = 256;

// softmax(scale * q K^T + mask) V for the stacked queries qg [n_kv, group * T, head_dim] (f32) over the
// positions [0, n_keys) of `layer` of `cache`; mask [T, n_keys] is added to every group's scores. Returns
// [n_kv, group * T, head_dim].
array attend_blocks(const array& qg, const kv_cache& cache, int layer, int64_t n_keys, int64_t group,
                    const array& mask, float scale);

}  // namespace mlxd::models::detail
