#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "detail.h"
#include "elementwise.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace {

// `a` with `axis` moved last, as contiguous rows of the compute dtype (or `t`).
array rows_last(const array& a, int ax, dtype t) {
  return detail::prepare(ax == a.ndim() - 1 ? a : swapaxes(a, ax, a.ndim() - 1), t);
}
array restore_axis(const array& rows, int ax) {
  return ax == rows.ndim() - 1 ? rows : contiguous(swapaxes(rows, ax, rows.ndim() - 1));
}

template <class T>
bool is_nan(T v) {
  return v != v;
}

// Scatters per-row cotangents `ct` [..., k] back to positions `idx` [..., k] of rows of length n.
array scatter_rows(const array& ct, const array& idx, int64_t n, int ax) {
  const array g = rows_last(ct, ax, dtype::f32);
  const array ix = rows_last(idx, ax, dtype::i64);
  shape_t shape = g.shape();
  shape.back() = n;
  array out = zeros(shape, dtype::f32);
  const int64_t k = g.shape(-1), rows = k ? g.size() / k : 0;
  const float* pg = g.data<float>();
  const int64_t* pi = ix.data<int64_t>();
  float* po = out.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < k; ++j) po[r * n + pi[r * k + j]] += pg[r * k + j];
  }
  return restore_axis(out, ax);
}

// Stable order of each row of `a` along `axis`: ascending with NaN last, or descending with NaN first.
array order_rows(const array& a, int ax, bool descending, int64_t k) {
  const array x = rows_last(a, ax, detail::compute_dtype(a.type()));
  const int64_t n = x.ndim() ? x.shape(-1) : 1, rows = n ? x.size() / n : 0;
  shape_t shape = x.shape();
  shape.back() = k;
  array out = array::empty(shape, dtype::i64);
  int64_t* po = out.mutable_data<int64_t>();
  detail::dispatch(x.type(), [&]<class T>() {
    const T* px = x.template data<T>();
    parallel_for(rows, 1, [&](int64_t b, int64_t e) {
      std::vector<int64_t> order(static_cast<size_t>(n));
      for (int64_t r = b; r < e; ++r) {
        const T* row = px + r * n;
        std::iota(order.begin(), order.end(), 0);
        auto before = [row, descending](int64_t i, int64_t j) {
          if (is_nan(row[i]) || is_nan(row[j])) return descending ? !is_nan(row[j]) : !is_nan(row[i]);
          return descending ? row[i] > row[j] : row[i] < row[j];
        };
        std::stable_sort(order.begin(), order.end(), before);
        std::copy(order.begin(), order.begin() + k, po + r * k);
      }
    });
  });
  return restore_axis(out, ax);
}

// Gathers rows of `a` (axis last) at `idx` positions; no autograd.
array gather_rows(const array& a, const array& idx, int ax) {
  const array x = rows_last(a, ax, a.type());
  const array ix = rows_last(idx, ax, dtype::i64);
  const int64_t n = x.shape(-1), k = ix.shape(-1), rows = k ? ix.size() / k : 0;
  array out = array::empty(ix.shape(), a.type());
  const size_t w = a.itemsize();
  const uint8_t* px = x.data<uint8_t>();
  const int64_t* pi = ix.data<int64_t>();
  uint8_t* po = out.mutable_data<uint8_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < k; ++j) std::memcpy(po + (r * k + j) * w, px + (r * n + pi[r * k + j]) * w, w);
  }
  return restore_axis(out, ax);
}

array sorted_values(const array& a, const array& idx, int ax) {
  array out;
  {
    autograd::no_grad guard;
    out = gather_rows(a, idx, ax);
  }
  if (is_floating(a.type())) {
    if (autograd::is_recording()) {
      const int64_t n = a.shape(ax);
      const array ix = detail::detach(idx);
      const dtype t = a.type();
      autograd::record(out, {a}, [ix, n, ax, t](const array& ct) {
        return std::vector<array>{astype(scatter_rows(ct, ix, n, ax), t)};
      });
    }
  }
  return out;
}

}  // namespace

array take(const array& a, const array& indices, int axis) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "take");
  if (is_floating(indices.type()))
    detail::fail("take", "indices must be integers, got ", indices.to_string());
  const int64_t n = a.shape(ax);
  std::vector<int64_t> idx = indices.to_vector<int64_t>();
  for (int64_t& i : idx) {
    if (i < -n || i >= n)
      detail::fail("take", "index ", i, " is out of range for axis ", ax, " of ", a.to_string());
    if (i < 0) i += n;
  }
  if (is_quantized(a.type())) return detail::take_quantized(a, idx, indices.shape(), ax);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; ++i) outer *= a.shape()[i];
  for (int i = ax + 1; i < a.ndim(); ++i) inner *= a.shape()[i];
  shape_t shape(a.shape().begin(), a.shape().begin() + ax);
  shape.insert(shape.end(), indices.shape().begin(), indices.shape().end());
  shape.insert(shape.end(), a.shape().begin() + ax + 1, a.shape().end());
  array out = array::empty(shape, a.type());
  const int64_t m = static_cast<int64_t>(idx.size());
  {
    autograd::no_grad guard;
    const array x = contiguous(a);
    const size_t block = static_cast<size_t>(inner) * a.itemsize();
    const uint8_t* px = x.data<uint8_t>();
    uint8_t* po = out.mutable_data<uint8_t>();
    parallel_for(outer * m, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t r = b; r < e; ++r) {
                     const int64_t o = r / m, j = r % m;
                     std::memcpy(po + r * block, px + (o * n + idx[j]) * block, block);
                   }
                 });
  }
  if (is_floating(a.type())) {
    if (autograd::is_recording()) {
      const shape_t in_shape = a.shape();
      const dtype t = a.type();
      auto shared_idx = std::make_shared<std::vector<int64_t>>(std::move(idx));
      autograd::record(out, {a}, [in_shape, t, shared_idx, outer, inner, n, m](const array& ct) {
        const array g = detail::prepare(ct, dtype::f32);
        array grad = zeros(in_shape, dtype::f32);
        const float* pg = g.data<float>();
        float* pd = grad.mutable_data<float>();
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t j = 0; j < m; ++j) {
            float* dst = pd + (o * n + (*shared_idx)[j]) * inner;
            const float* src = pg + (o * m + j) * inner;
            for (int64_t i = 0; i < inner; ++i) dst[i] += src[i];
          }
        }
        return std::vector<array>{astype(grad, t)};
      });
    }
  }
  return out;
}

array cumsum(const array& a, int axis, bool reverse, bool inclusive) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "cumsum");
  const bool floating = is_floating(a.type());
  const dtype ct = floating ? dtype::f32 : dtype::i64;
  array out;
  {
    autograd::no_grad guard;
    const array x = rows_last(a, ax, ct);
    array y = array::empty(x.shape(), ct);
    const int64_t n = x.ndim() ? x.shape(-1) : 1, rows = n ? x.size() / n : 0;
    detail::dispatch(ct, [&]<class T>() {
      using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
      const T* px = x.template data<T>();
      T* py = y.template mutable_data<T>();
      for (int64_t r = 0; r < rows; ++r) {
        Acc s = 0;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t i = r * n + (reverse ? n - 1 - j : j);
          if (inclusive) s += static_cast<Acc>(px[i]);
          py[i] = static_cast<T>(s);
          if (!inclusive) s += static_cast<Acc>(px[i]);
        }
      }
    });
    out = restore_axis(y, ax);
    if (floating && a.type() != dtype::f32) out = astype(out, a.type());
  }
  if (floating) {
    if (autograd::is_recording()) {
      const dtype t = a.type();
      autograd::record(out, {a}, [ax, reverse, inclusive, t](const array& c) {
        return std::vector<array>{astype(cumsum(c, ax, !reverse, inclusive), t)};
      });
    }
  }
  return out;
}

std::pair<array, array> topk(const array& a, int k, int axis) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "topk");
  if (k < 0 || k > a.shape(ax))
    detail::fail("topk", "k = ", k, " is outside [0, ", a.shape(ax), "] for ", a.to_string());
  const array idx = order_rows(a, ax, true, k);
  return {sorted_values(a, idx, ax), idx};
}

array argsort(const array& a, int axis) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "argsort");
  return order_rows(a, ax, false, a.shape(ax));
}

array sort(const array& a, int axis) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "sort");
  return sorted_values(a, argsort(a, ax), ax);
}

bool array_equal(const array& a, const array& b) {
  if (a.shape() != b.shape()) return false;
  if (is_quantized(a.type()) || is_quantized(b.type())) {
    return a.type() == b.type() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
  }
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])))) return false;
  }
  return true;
}

bool allclose(const array& a, const array& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) || std::isnan(y[i])) {
      if (std::isnan(x[i]) != std::isnan(y[i])) return false;
      continue;
    }
    if (x[i] == y[i]) continue;  // equal infinities
    if (std::fabs(x[i] - y[i]) > atol + rtol * std::fabs(y[i])) return false;
  }
  return true;
}

}  // namespace mlxd
