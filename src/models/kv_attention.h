// Attention over the KV cache. Decode-sized chunks read it directly (cached_attention); longer chunks over an
// f16 cache read a block of positions at a time, each block of keys and values converted to f32 on its own,
// so a step never makes an f32 copy of the whole cache.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"
#include "mlxd/models/kv_cache.h"

namespace mlxd::models::detail {

// Chunks of up to this many tokens (decode steps) attend straight from the cache with cached_attention, one
// pass over the keys and values per query row; longer chunks (prefill) use matrix products.
inline constexpr int64_t direct_attention_tokens = 8;

// Positions per block: the f32 scratch of one block is [n_kv_heads, kv_block, head_dim].
inline constexpr int64_t kv_block = 256;

// softmax(scale * q K^T + mask) V for the stacked queries qg [n_kv, group * T, head_dim] (f32) over the
// positions [0, n_keys) of `layer` of `cache`; mask [T, n_keys] is added to every group's scores. Returns
// [n_kv, group * T, head_dim].
array attend_blocks(const array& qg, const kv_cache& cache, int layer, int64_t n_keys, int64_t group,
                    const array& mask, float scale);

}  // namespace mlxd::models::detail
