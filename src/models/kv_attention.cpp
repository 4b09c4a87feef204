#include "kv_attention.h"

#include <algorithm>
#include <vector>

#include "mlxd/core/ops.h"

namespace mlxd::models::detail {

array attend_blocks(const array& qg, const kv_cache& cache, int layer, int64_t n_keys, int64_t group,
                    const array& mask, float scale) {
  const int64_t n_kv = qg.shape(0), rows = qg.shape(1), n_tokens = rows / group;
  std::vector<array> scores;  // per block [n_kv, rows, block]
  for (int64_t s0 = 0; s0 < n_keys; s0 += kv_block) {
    const int64_t s1 = std::min(n_keys, s0 + kv_block);
    const array k = astype(cache.keys(layer, static_cast<int>(s1), static_cast<int>(s0)), dtype::f32);
    scores.push_back(matmul(qg, swapaxes(k, 1, 2)));
  }
  array s = scores.size() == 1 ? scores[0] : concatenate(scores, 2);  // [n_kv, rows, n_keys]
  s = multiply(s, array(scale));
  s = add(reshape(s, {n_kv, group, n_tokens, n_keys}), mask);
  const array probs = reshape(softmax(s, -1), {n_kv, rows, n_keys});
  array out;  // [n_kv, rows, head_dim]
  for (int64_t s0 = 0; s0 < n_keys; s0 += kv_block) {
    const int64_t s1 = std::min(n_keys, s0 + kv_block);
    const array v = astype(cache.values(layer, static_cast<int>(s1), static_cast<int>(s0)), dtype::f32);
    const array part = matmul(slice_axis(probs, 2, s0, s1), v);
    out = s0 == 0 ? part : add(out, part);
  }
  return out;
}

}  // namespace mlxd::models::detail
