#include "kv_attention.h"

#include <algorithm>
#include <vector>

#include "mlxd/core/ops.h"

namespace mlxd::models::detail {

array attend_by_rows(const array& qg, int64_t group, const array& mask,
                     const std::function<array(const array& q, const array& mask)>& attend) {
  const int64_t rows = qg.shape(1), n_tokens = rows / group;
  if (rows <= query_rows)
    return attend(qg, group == 1 ? mask : concatenate(std::vector<array>(group, mask), 0));
  std::vector<array> parts;
  for (int64_t g = 0; g < group; ++g) {
    for (int64_t t0 = 0; t0 < n_tokens; t0 += query_rows) {
      const int64_t t1 = std::min(n_tokens, t0 + query_rows);
      parts.push_back(
          attend(slice_axis(qg, 1, g * n_tokens + t0, g * n_tokens + t1), slice_axis(mask, 0, t0, t1)));
    }
  }
  return concatenate(parts, 1);
}

array attend_blocks(const array& q, const kv_cache& cache, int layer, int64_t n_keys, const array& mask,
                    float scale) {
  std::vector<array> scores;  // per block [n_kv, rows, block]
  for (int64_t s0 = 0; s0 < n_keys; s0 += kv_block) {
    const int64_t s1 = std::min(n_keys, s0 + kv_block);
    const array k = astype(cache.keys(layer, static_cast<int>(s1), static_cast<int>(s0)), dtype::f32);
    scores.push_back(matmul(q, swapaxes(k, 1, 2)));
  }
  array probs = scores.size() == 1 ? scores[0] : concatenate(scores, 2);  // [n_kv, rows, n_keys]
  scores.clear();  // a statement per step: two score arrays alive at a time
  probs = multiply(probs, array(scale));
  probs = add(probs, mask);
  probs = softmax(probs, -1);
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
