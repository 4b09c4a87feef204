// Attention over the KV cache. Decode-sized chunks read it directly (cached_attention); longer chunks (a
// prompt) use matrix products, by chunks of query rows so that the scores stay bounded, and over an f16
// cache a block of positions at a time, each block of keys and values converted to f32 on its own, so a step
// never makes an f32 copy of the whole cache.
#pragma once

#include <cstdint>
#include <functional>

#include "mlxd/core/array.h"
#include "mlxd/models/kv_cache.h"

namespace mlxd::models::detail {

// Chunks of up to this many tokens (decode steps) attend straight from the cache with cached_attention, one
// pass over the keys and values per query row; longer chunks (prefill) use matrix products.
inline constexpr int64_t direct_attention_tokens = 8;

// Positions per block: the f32 scratch of one block is [n_kv_heads, kv_block, head_dim].
inline constexpr int64_t kv_block = 256;

// Query rows attended at once: at most query_rows, and fewer when the keys are many, so that the scores
// [n_kv_heads, rows, n_keys] f32 stay within score_bytes (at least min_query_rows rows). A whole prompt's
// would be [n_kv_heads, group * T, n_keys] (512 MiB for 2048 tokens of a 1B model with 8 kv heads); 4 MiB
// is the size of a 512-token chunk's hidden states in that model.
inline constexpr int64_t query_rows = 256;
inline constexpr int64_t min_query_rows = 32;
inline constexpr int64_t score_bytes = int64_t{4} << 20;

// softmax(scale * q K^T + mask) V, given attend(q, mask) for q [n_kv, r, head_dim] and mask [r, n_keys]
// (returning [n_kv, r, head_dim]), for the stacked queries qg [n_kv, group * T, head_dim] and the mask
// [T, n_keys] that every group shares. Up to the rows allowed above are one call; more are called in chunks
// of at most that many rows of one group. Every output row is computed by the same operations either way.
array attend_by_rows(const array& qg, int64_t group, const array& mask,
                     const std::function<array(const array& q, const array& mask)>& attend);

// attend() over an f16 cache: the positions [0, n_keys) of `layer` of `cache`, a block at a time.
array attend_blocks(const array& q, const kv_cache& cache, int layer, int64_t n_keys, const array& mask,
                    float scale);

}  // namespace mlxd::models::detail
