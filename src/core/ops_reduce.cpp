#include <cmath>
#include <limits>

#include "detail.h"
#include "elementwise.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace {

enum class reduce_fn { sum, max, min, logsumexp };

// `a` with the reduced axes moved last and made contiguous, seen as [outer, inner]; plus the output shape.
struct rows_view {
  array data;
  int64_t outer, inner;
  shape_t out_shape, keep_shape;
};

rows_view as_rows(const array& a, const axes_t& axes_in, bool keepdims, const char* op, dtype t) {
  const axes_t axes = detail::normalize_axes(axes_in, a.ndim(), op);
  axes_t perm;
  shape_t out_shape, keep_shape = a.shape();
  int64_t inner = 1;
  for (int i = 0; i < a.ndim(); ++i) {
    if (std::find(axes.begin(), axes.end(), i) == axes.end()) {
      perm.push_back(i);
      out_shape.push_back(a.shape()[i]);
    }
  }
  for (int ax : axes) {
    perm.push_back(ax);
    inner *= a.shape()[ax];
    keep_shape[ax] = 1;
  }
  const array moved = detail::prepare(transpose(a, perm), t);
  const int64_t outer = shape_size(out_shape);
  return {moved, outer, inner, keepdims ? keep_shape : out_shape, keep_shape};
}

template <class T, class Acc>
Acc reduce_row(reduce_fn f, const T* x, int64_t n) {
  if (f == reduce_fn::sum) {
    Acc s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<Acc>(x[i]);
    return s;
  }
  Acc m = static_cast<Acc>(x[0]);
  for (int64_t i = 1; i < n; ++i) {
    const Acc v = static_cast<Acc>(x[i]);
    if (v != v) return v;  // NaN wins
    m = f == reduce_fn::max ? (v > m ? v : m) : (v < m ? v : m);
  }
  if constexpr (std::is_floating_point_v<Acc>) {
    if (f != reduce_fn::logsumexp || std::isinf(m)) return m;  // all -inf gives -inf; any +inf gives +inf
    Acc s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<Acc>(x[i]) - m);
    return m + std::log(s);
  }
  return m;
}

array reduce(const array& a, const axes_t& axes, bool keepdims, reduce_fn f, const char* op) {
  const bool floating = is_floating(a.type());
  const dtype ct =
      floating ? dtype::f32 : (f == reduce_fn::sum ? dtype::i64 : detail::compute_dtype(a.type()));
  const dtype result = floating ? a.type() : (f == reduce_fn::logsumexp ? dtype::f32 : ct);
  rows_view rv;
  {
    autograd::no_grad guard;
    rv = as_rows(a, axes, keepdims, op, f == reduce_fn::logsumexp ? dtype::f32 : ct);
  }
  if (rv.inner == 0 && f != reduce_fn::sum) detail::fail(op, "zero-size reduction of ", a.to_string());
  array out = array::empty(rv.out_shape, f == reduce_fn::logsumexp ? dtype::f32 : ct);
  detail::dispatch(rv.data.type(), [&]<class T>() {
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    const T* x = rv.data.template data<T>();
    T* y = out.mutable_data<T>();
    parallel_for(rv.outer, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(rv.inner, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t r = b; r < e; ++r) {
                     y[r] = static_cast<T>(reduce_row<T, Acc>(f, x + r * rv.inner, rv.inner));
                   }
                 });
  });
  if (out.type() != result) {
    autograd::no_grad guard;
    out = astype(out, result);
  }
  if (floating) {
    if (autograd::is_recording()) {
      const array x = detail::detach(a), y = detail::detach(out);
      const shape_t keep = rv.keep_shape;
      autograd::record(out, {a}, [f, x, y, keep](const array& cot) {
        const array g = broadcast_to(reshape(astype(cot, dtype::f32), keep), x.shape());
        const array xf = astype(x, dtype::f32);
        const array yb = broadcast_to(reshape(astype(y, dtype::f32), keep), x.shape());
        array dx;
        if (f == reduce_fn::sum) {
          dx = g;
        } else if (f == reduce_fn::logsumexp) {
          dx = multiply(g, exp(subtract(xf, yb)));
        } else {  // max/min: split evenly among ties, as PyTorch's amax does
          const array hit = astype(equal(xf, yb), dtype::f32);
          axes_t reduced;
          for (int i = 0; i < x.ndim(); ++i) {
            if (keep[i] == 1 && x.shape()[i] != 1) reduced.push_back(i);
          }
          const array count = reduced.empty() ? hit : sum(hit, reduced, true);
          dx = multiply(g, divide(hit, count));
        }
        return std::vector<array>{astype(dx, x.type())};
      });
    }
  }
  return out;
}

}  // namespace

array sum(const array& a, const axes_t& axes, bool keepdims) {
  return reduce(a, axes, keepdims, reduce_fn::sum, "sum");
}
array max(const array& a, const axes_t& axes, bool keepdims) {
  return reduce(a, axes, keepdims, reduce_fn::max, "max");
}
array min(const array& a, const axes_t& axes, bool keepdims) {
  return reduce(a, axes, keepdims, reduce_fn::min, "min");
}
array logsumexp(const array& a, const axes_t& axes, bool keepdims) {
  return reduce(a, axes, keepdims, reduce_fn::logsumexp, "logsumexp");
}

array mean(const array& a, const axes_t& axes, bool keepdims) {
  const axes_t ax = detail::normalize_axes(axes, a.ndim(), "mean");
  int64_t n = 1;
  for (int i : ax) n *= a.shape()[i];
  const array total = sum(is_floating(a.type()) ? a : astype(a, dtype::f32), ax, keepdims);
  return multiply(total, array(n ? 1.0f / static_cast<float>(n) : std::numeric_limits<float>::quiet_NaN()));
}

array var(const array& a, const axes_t& axes, bool keepdims, int ddof) {
  const axes_t ax = detail::normalize_axes(axes, a.ndim(), "var");
  int64_t n = 1;
  for (int i : ax) n *= a.shape()[i];
  if (ddof < 0) detail::fail("var", "ddof must be >= 0, got ", ddof);
  const array x = is_floating(a.type()) ? a : astype(a, dtype::f32);
  const array centred = subtract(x, mean(x, ax, true));
  const array ss = sum(square(centred), ax, keepdims);
  const int64_t denom = n - ddof;
  return multiply(
      ss, array(denom > 0 ? 1.0f / static_cast<float>(denom) : std::numeric_limits<float>::quiet_NaN()));
}

array argmax(const array& a, int axis, bool keepdims) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "argmax");
  rows_view rv = as_rows(a, {ax}, keepdims, "argmax", detail::compute_dtype(a.type()));
  if (rv.inner == 0) detail::fail("argmax", "zero-size axis in ", a.to_string());
  array out = array::empty(rv.out_shape, dtype::i64);
  int64_t* y = out.mutable_data<int64_t>();
  detail::dispatch(rv.data.type(), [&]<class T>() {
    const T* x = rv.data.template data<T>();
    for (int64_t r = 0; r < rv.outer; ++r) {
      const T* row = x + r * rv.inner;
      int64_t best = 0;
      for (int64_t i = 1; i < rv.inner; ++i) {
        if (row[best] != row[best]) break;  // the first NaN is the maximum
        if (row[i] > row[best] || row[i] != row[i]) best = i;
      }
      y[r] = best;
    }
  });
  return out;
}

}  // namespace mlxd
