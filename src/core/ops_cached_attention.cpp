#include <algorithm>
#include <cmath>
#include <vector>

#include "detail.h"
#include "kernels/kernels.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/cached_attention.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace {

// One kv head's cached rows: element (s, d) at data[s * head_dim + d].
struct cache_rows {
  const void* data;
  bool half;
  float at(int64_t i) const {
    return half ? f16_to_f32(static_cast<const uint16_t*>(data)[i]) : static_cast<const float*>(data)[i];
  }
};

// The plain oracle: scores, softmax and weighted sum accumulated in double.
void attend_row_reference(const float* q, cache_rows k, cache_rows v, int64_t n, int64_t dim, float scale,
                          float* out) {
  std::vector<double> p(static_cast<size_t>(n));
  double m = -INFINITY;
  for (int64_t s = 0; s < n; ++s) {
    double dot = 0;
    for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(q[d]) * k.at(s * dim + d);
    p[s] = dot * scale;
    m = std::max(m, p[s]);
  }
  double sum = 0;
  for (double& x : p) sum += (x = std::exp(x - m));
  for (int64_t d = 0; d < dim; ++d) {
    double acc = 0;
    for (int64_t s = 0; s < n; ++s) acc += p[s] * v.at(s * dim + d);
    out[d] = static_cast<float>(acc / sum);
  }
}

// Scores four keys per dot4 call (q loaded once for the four), softmax in place, then the weighted rows.
void attend_row_fast(const kernels::table& kt, const float* q, cache_rows k, cache_rows v, int64_t n,
                     int64_t dim, float scale, float* p, float* out) {
  const auto* k16 = static_cast<const uint16_t*>(k.data);
  const auto* k32 = static_cast<const float*>(k.data);
  int64_t s = 0;
  for (; s + 4 <= n; s += 4) {
    if (k.half) {
      kt.dot4_f16(k16 + s * dim, dim, q, dim, p + s);
    } else {
      kt.dot4_f32(k32 + s * dim, dim, q, dim, p + s);
    }
  }
  for (; s < n; ++s) p[s] = k.half ? kt.dot_f16(k16 + s * dim, q, dim) : kt.dot_f32(k32 + s * dim, q, dim);
  for (s = 0; s < n; ++s) p[s] *= scale;
  kt.softmax_row(p, p, n, false);
  std::fill(out, out + dim, 0.0f);
  if (v.half) {
    kt.weighted_rows_f16(static_cast<const uint16_t*>(v.data), dim, p, n, dim, out);
  } else {
    kt.weighted_rows_f32(static_cast<const float*>(v.data), dim, p, n, dim, out);
  }
}

// `a` with contiguous rows, as f32 or f16: a view of a cache as it is, anything else copied.
array rows_contiguous(const array& a) {
  const dtype t = a.type() == dtype::f16 ? dtype::f16 : dtype::f32;
  const bool rows_ok =
      a.type() == t && a.strides()[2] == 1 && (a.shape(1) <= 1 || a.strides()[1] == a.shape(2));
  return rows_ok ? a : detail::prepare(a, t);
}

}  // namespace

array cached_attention(const array& q, const array& keys, const array& values, int64_t group, float scale) {
  if (q.ndim() != 3 || keys.ndim() != 3 || keys.shape() != values.shape() || keys.shape(0) != q.shape(0) ||
      keys.shape(2) != q.shape(2) || group < 1 || q.shape(1) % group != 0 ||
      keys.shape(1) < q.shape(1) / group) {
    detail::fail("cached_attention", "q ", q.to_string(), " must be [n_kv, group * T, head_dim] with group ",
                 group, " and keys ", keys.to_string(), " and values ", values.to_string(),
                 " [n_kv, S >= T, head_dim]");
  }
  for (const array* a : {&q, &keys, &values}) {
    if (!is_floating(a->type()))
      detail::fail("cached_attention", "inputs must be float, got ", a->to_string());
  }
  const int64_t n_kv = q.shape(0), rows = q.shape(1), dim = q.shape(2), seq = keys.shape(1);
  const int64_t n_tokens = rows / group;
  array out = array::empty(q.shape(), dtype::f32);
  if (out.size() == 0) return out;
  autograd::no_grad guard;
  const array qf = detail::prepare(q, dtype::f32), k = rows_contiguous(keys), v = rows_contiguous(values);
  const bool half = k.type() == dtype::f16, v_half = v.type() == dtype::f16;
  const size_t k_elem = half ? 2 : 4, v_elem = v_half ? 2 : 4;
  const auto* kb = static_cast<const char*>(k.raw_data());
  const auto* vb = static_cast<const char*>(v.raw_data());
  const int64_t k_head = k.strides()[0], v_head = v.strides()[0];
  const kernels::table* kt = kernels::active();
  const float* pq = qf.data<float>();
  float* po = out.mutable_data<float>();
  parallel_for(n_kv * rows, 1, [&](int64_t b, int64_t e) {
    std::vector<float> p(kt ? static_cast<size_t>(seq) : 0);
    for (int64_t i = b; i < e; ++i) {
      const int64_t h = i / rows, visible = seq - n_tokens + i % rows % n_tokens + 1;
      const cache_rows kh{kb + static_cast<size_t>(h * k_head) * k_elem, half};
      const cache_rows vh{vb + static_cast<size_t>(h * v_head) * v_elem, v_half};
      if (kt) {
        attend_row_fast(*kt, pq + i * dim, kh, vh, visible, dim, scale, p.data(), po + i * dim);
      } else {
        attend_row_reference(pq + i * dim, kh, vh, visible, dim, scale, po + i * dim);
      }
    }
  });
  return out;
}

}  // namespace mlxd
