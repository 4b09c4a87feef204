#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>
#include <vector>

#include "detail.h"
#include "elementwise.h"
#include "kernels/kernels.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"
#include "sgemm.h"

namespace mlxd {
namespace {

constexpr int64_t kBlock = 64;  // query rows per block; keys before the block's first visible key are skipped

struct attention_plan {
  int64_t n_rows, n_heads, n_kv, seq, head_dim, group;
  float scale;
  std::vector<int64_t> seg;    // [n_rows * seq] segment ids (all 0 without segments)
  std::vector<int64_t> first;  // [n_rows * seq] first key a query sees: the first position of its segment
  // Keys [key_begin(b, t0), t1) hold every key the queries [t0, t1) of row b see.
  int64_t key_begin(int64_t b, int64_t t0, int64_t t1) const {
    int64_t k0 = t0;
    for (int64_t t = t0; t < t1; ++t) k0 = std::min(k0, first[b * seq + t]);
    return k0;
  }
};

// Softmax over the visible keys of row t (scores scaled already, held at p[k0..t1)); 0 elsewhere in the row.
void softmax_visible(const attention_plan& pl, const kernels::table* kt, int64_t b, int64_t t, int64_t k0,
                     int64_t t1, float* p) {
  const int64_t* seg = pl.seg.data() + b * pl.seq;
  for (int64_t s = k0; s <= t; ++s) {
    if (seg[s] != seg[t]) p[s - k0] = -INFINITY;
  }
  float* row = p + (pl.first[b * pl.seq + t] > k0 ? pl.first[b * pl.seq + t] - k0 : 0);
  std::fill(p, row, 0.0f);
  const int64_t n = t + 1 - (row - p) - k0;
  if (kt) {
    kt->softmax_row(row, row, n, false);
  } else {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, row[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i]) - m);
    for (int64_t i = 0; i < n; ++i)
      row[i] = static_cast<float>(std::exp(static_cast<double>(row[i]) - m) / sum);
  }
  std::fill(p + (t + 1 - k0), p + (t1 - k0), 0.0f);
}

// out [n_rows, n_heads, seq, head_dim] and the probabilities [n_rows, n_heads, seq, seq] (only the blocks the
// backward pass reads are written).
void attention_forward(const attention_plan& pl, const float* q, const float* k, const float* v, float* out,
                       float* probs) {
  const kernels::table* kt = kernels::active();
  const int64_t T = pl.seq, D = pl.head_dim;
  // Each (row, head) writes its own outputs and probabilities.
  parallel_for(pl.n_rows * pl.n_heads, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / pl.n_heads, h = i % pl.n_heads;
      const int64_t qh = (b * pl.n_heads + h) * T, kh = (b * pl.n_kv + h / pl.group) * T;
      float* p = probs + qh * T;
      for (int64_t t0 = 0; t0 < T; t0 += kBlock) {
        const int64_t t1 = std::min(T, t0 + kBlock), k0 = pl.key_begin(b, t0, t1);
        float* pb = p + t0 * T + k0;  // [t1 - t0, t1 - k0], leading dimension T
        detail::sgemm(false, true, t1 - t0, t1 - k0, D, pl.scale, q + (qh + t0) * D, D, k + (kh + k0) * D, D,
                      0.0f, pb, T);
        for (int64_t r = 0; r < t1 - t0; ++r) softmax_visible(pl, kt, b, t0 + r, k0, t1, pb + r * T);
        detail::sgemm(false, false, t1 - t0, D, t1 - k0, 1.0f, pb, T, v + (kh + k0) * D, D, 0.0f,
                      out + (qh + t0) * D, D);
      }
    }
  });
}

// Cotangents of q, k and v from the cotangent `dout` of the output.
void attention_backward(const attention_plan& pl, const float* q, const float* k, const float* v,
                        const float* out, const float* probs, const float* dout, float* dq, float* dk,
                        float* dv) {
  const int64_t T = pl.seq, D = pl.head_dim;
  std::fill(dk, dk + pl.n_rows * pl.n_kv * T * D, 0.0f);
  std::fill(dv, dv + pl.n_rows * pl.n_kv * T * D, 0.0f);
  // Each (row, kv head) task owns its dk and dv; its query heads add into them in order.
  parallel_for(pl.n_rows * pl.n_kv, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> ds(static_cast<size_t>(kBlock * T)), delta(static_cast<size_t>(T));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / pl.n_kv, kv = i % pl.n_kv, kh = (b * pl.n_kv + kv) * T;
      for (int64_t h = kv * pl.group; h < (kv + 1) * pl.group; ++h) {
        const int64_t qh = (b * pl.n_heads + h) * T;
        const float* p = probs + qh * T;
        // rowsum(dP * P) = dout . out for each query.
        for (int64_t t = 0; t < T; ++t) {
          float s = 0;
          for (int64_t d = 0; d < D; ++d) s += dout[(qh + t) * D + d] * out[(qh + t) * D + d];
          delta[t] = s;
        }
        for (int64_t t0 = 0; t0 < T; t0 += kBlock) {
          const int64_t t1 = std::min(T, t0 + kBlock), k0 = pl.key_begin(b, t0, t1), n = t1 - t0, m = t1 - k0;
          const float* pb = p + t0 * T + k0;
          detail::sgemm(false, true, n, m, D, 1.0f, dout + (qh + t0) * D, D, v + (kh + k0) * D, D, 0.0f,
                        ds.data(), m);
          for (int64_t r = 0; r < n; ++r) {
            for (int64_t s = 0; s < m; ++s) ds[r * m + s] = pb[r * T + s] * (ds[r * m + s] - delta[t0 + r]);
          }
          detail::sgemm(false, false, n, D, m, pl.scale, ds.data(), m, k + (kh + k0) * D, D, 0.0f,
                        dq + (qh + t0) * D, D);
          detail::sgemm(true, false, m, D, n, pl.scale, ds.data(), m, q + (qh + t0) * D, D, 1.0f,
                        dk + (kh + k0) * D, D);
          detail::sgemm(true, false, m, D, n, 1.0f, pb, T, dout + (qh + t0) * D, D, 1.0f, dv + (kh + k0) * D,
                        D);
        }
      }
    }
  });
}

}  // namespace

array causal_attention(const array& q, const array& k, const array& v, const array& segments, float scale) {
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4 || k.shape() != v.shape() || k.shape(0) != q.shape(0) ||
      k.shape(2) != q.shape(2) || k.shape(3) != q.shape(3) || k.shape(1) < 1 ||
      q.shape(1) % k.shape(1) != 0) {
    detail::fail("causal_attention", "q ", q.to_string(), ", k ", k.to_string(), ", v ", v.to_string(),
                 " must be [batch, heads, seq, head_dim] and [batch, kv_heads, seq, head_dim] with heads a "
                 "multiple of kv_heads");
  }
  for (const array* a : {&q, &k, &v}) {
    if (!is_floating(a->type()))
      detail::fail("causal_attention", "inputs must be float, got ", a->to_string());
  }
  auto pl = std::make_shared<attention_plan>();
  pl->n_rows = q.shape(0), pl->n_heads = q.shape(1), pl->n_kv = k.shape(1), pl->seq = q.shape(2);
  pl->head_dim = q.shape(3), pl->group = pl->n_heads / pl->n_kv, pl->scale = scale;
  if (segments.size() != 0) {
    if (segments.shape() != shape_t{pl->n_rows, pl->seq} || is_floating(segments.type())) {
      detail::fail("causal_attention", "segments ", segments.to_string(),
                   " must be integer [batch, seq] for q ", q.to_string());
    }
    pl->seg = segments.to_vector<int64_t>();
  } else {
    pl->seg.assign(static_cast<size_t>(pl->n_rows * pl->seq), 0);
  }
  pl->first.resize(pl->seg.size());
  for (int64_t b = 0; b < pl->n_rows; ++b) {
    std::unordered_map<int64_t, int64_t> first_of;
    for (int64_t t = 0; t < pl->seq; ++t) {
      pl->first[b * pl->seq + t] = first_of.try_emplace(pl->seg[b * pl->seq + t], t).first->second;
    }
  }
  const dtype out_type = promote_types(promote_types(q.type(), k.type()), v.type());
  array out = array::empty(q.shape(), dtype::f32);
  array probs = array::empty({pl->n_rows, pl->n_heads, pl->seq, pl->seq}, dtype::f32);
  array qf, kf, vf;
  {
    autograd::no_grad guard;
    qf = detail::prepare(q, dtype::f32), kf = detail::prepare(k, dtype::f32),
    vf = detail::prepare(v, dtype::f32);
    if (q.size() != 0) {
      attention_forward(*pl, qf.data<float>(), kf.data<float>(), vf.data<float>(), out.mutable_data<float>(),
                        probs.mutable_data<float>());
    }
  }
  if (autograd::is_recording()) {
    const array qd = detail::detach(qf), kd = detail::detach(kf), vd = detail::detach(vf),
                od = detail::detach(out);
    const dtype tq = q.type(), tk = k.type(), tv = v.type();
    autograd::record(out, {q, k, v}, [pl, qd, kd, vd, od, probs, tq, tk, tv](const array& ct) {
      const array g = detail::prepare(ct, dtype::f32);
      array dq = array::empty(qd.shape(), dtype::f32), dk = array::empty(kd.shape(), dtype::f32),
            dv = array::empty(vd.shape(), dtype::f32);
      if (qd.size() != 0) {
        attention_backward(*pl, qd.data<float>(), kd.data<float>(), vd.data<float>(), od.data<float>(),
                           probs.data<float>(), g.data<float>(), dq.mutable_data<float>(),
                           dk.mutable_data<float>(), dv.mutable_data<float>());
      }
      return std::vector<array>{astype(dq, tq), astype(dk, tk), astype(dv, tv)};
    });
  }
  return out_type == dtype::f32 ? out : astype(out, out_type);
}

}  // namespace mlxd
