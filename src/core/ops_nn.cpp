#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <vector>

#include "detail.h"
#include "elementwise.h"
#include "kernels/kernels.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace {

// Plain oracle for one row: double accumulation, std::exp.
void softmax_row_reference(const float* x, float* y, int64_t n, bool log) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  if (m == -INFINITY) {
    for (int64_t i = 0; i < n; ++i) y[i] = log ? -INFINITY : 0.0f;
    return;
  }
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - m);
  for (int64_t i = 0; i < n; ++i) {
    const double shifted = static_cast<double>(x[i]) - m;
    y[i] = static_cast<float>(log ? shifted - std::log(s) : std::exp(shifted) / s);
  }
}

// Applies fn(x_row, y_row, n) to every row of `a` along `axis`, in f32; returns the result in a's float
// dtype.
template <class RowFn>
array map_rows(const array& a, int axis, const char* op, RowFn fn) {
  const int ax = detail::normalize_axis(axis, a.ndim(), op);
  const int last = a.ndim() - 1;
  const array moved = ax == last ? a : swapaxes(a, ax, last);
  const array x = detail::prepare(moved, dtype::f32);
  array y = array::empty(x.shape(), dtype::f32);
  const int64_t n = x.ndim() ? x.shape(-1) : 1;
  const int64_t rows = n ? x.size() / n : 0;
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) fn(px + r * n, py + r * n, n, r);
  });
  array out = ax == last ? y : swapaxes(y, ax, last);
  const dtype t = is_floating(a.type()) ? a.type() : dtype::f32;
  return t == dtype::f32 ? contiguous(out) : astype(out, t);
}

array softmax_impl(const array& a, int axis, bool log) {
  array out;
  {
    autograd::no_grad guard;
    const kernels::table* kt = kernels::active();
    out = map_rows(a, axis, log ? "log_softmax" : "softmax",
                   [kt, log](const float* x, float* y, int64_t n, int64_t) {
                     if (kt) {
                       kt->softmax_row(x, y, n, log);
                     } else {
                       softmax_row_reference(x, y, n, log);
                     }
                   });
  }
  if (autograd::is_recording()) {
    const array x = detail::detach(a), y = detail::detach(out);
    autograd::record(out, {a}, [x, y, axis, log](const array& ct) {
      const array g = astype(ct, dtype::f32), yf = astype(y, dtype::f32);
      const array dx = log ? subtract(g, multiply(exp(yf), sum(g, {axis}, true)))
                           : multiply(yf, subtract(g, sum(multiply(g, yf), {axis}, true)));
      return std::vector<array>{astype(dx, x.type())};
    });
  }
  return out;
}

}  // namespace

array softmax(const array& a, int axis) {
  return softmax_impl(a, axis, false);
}
array log_softmax(const array& a, int axis) {
  return softmax_impl(a, axis, true);
}

array rms_norm(const array& x, const array& weight, float eps) {
  if (x.ndim() == 0 || weight.ndim() != 1 || weight.shape(0) != x.shape(-1)) {
    detail::fail("rms_norm", "weight ", weight.to_string(), " does not match the last axis of ",
                 x.to_string());
  }
  array out;
  {
    autograd::no_grad guard;
    const array w = detail::prepare(weight, dtype::f32);
    const float* pw = w.data<float>();
    const kernels::table* kt = kernels::active();
    out = map_rows(x, -1, "rms_norm", [kt, pw, eps](const float* r, float* y, int64_t n, int64_t) {
      if (kt) return kt->rms_norm_row(r, pw, y, n, eps);
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(r[i]) * r[i];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(r[i] * inv * pw[i]);
    });
  }
  if (autograd::is_recording()) {
    const array xd = detail::detach(x), wd = detail::detach(weight);
    autograd::record(out, {x, weight}, [xd, wd, eps](const array& ct) {
      const array xf = astype(xd, dtype::f32), wf = astype(wd, dtype::f32), g = astype(ct, dtype::f32);
      const array r = rsqrt(add(mean(square(xf), {-1}, true), array(eps)));  // [..., 1]
      const array gw = multiply(g, wf);
      const array dx = subtract(multiply(r, gw), multiply(multiply(xf, multiply(r, square(r))),
                                                          mean(multiply(gw, xf), {-1}, true)));
      const array dw = unbroadcast(multiply(g, multiply(xf, r)), wd.shape());
      return std::vector<array>{astype(dx, xd.type()), astype(dw, wd.type())};
    });
  }
  return out;
}

array layer_norm(const array& x, const array& weight, const array& bias, float eps) {
  if (x.ndim() == 0) detail::fail("layer_norm", "needs at least one axis, got ", x.to_string());
  const int64_t n = x.shape(-1);
  for (const array* p : {&weight, &bias}) {
    if (p->size() != 0 && (p->ndim() != 1 || p->shape(0) != n)) {
      detail::fail("layer_norm", "parameter ", p->to_string(), " does not match the last axis of ",
                   x.to_string());
    }
  }
  const array xf = is_floating(x.type()) ? astype(x, dtype::f32) : astype(x, dtype::f32);
  const array mu = mean(xf, {-1}, true);
  const array centred = subtract(xf, mu);
  array y = multiply(centred, rsqrt(add(mean(square(centred), {-1}, true), array(eps))));
  if (weight.size() != 0) y = multiply(y, weight);
  if (bias.size() != 0) y = add(y, bias);
  return is_floating(x.type()) ? astype(y, x.type()) : y;
}

namespace {

// Per row of the logits, m = max and s = sum(exp(x - m)): the forward's by-product that lets the backward
// rebuild the softmax in one pass.
struct row_stats {
  std::vector<float> m, s;
};

// d loss / d logits = ct * (softmax(x) - onehot(t)) row by row in one pass (0 for ignored rows): the fused
// form of the reference vjp, which materialises the one-hot and several full-size temporaries.
array cross_entropy_grad(const kernels::table& kt, const array& logits, const std::vector<int64_t>& t,
                         const row_stats& stats, const array& ct, int64_t ignore_index) {
  const array x = detail::prepare(logits, dtype::f32), g = detail::prepare(ct, dtype::f32);
  const int64_t vocab = x.shape(-1);
  array dx = array::empty(x.shape(), dtype::f32);
  const float* px = x.data<float>();
  const float* pg = g.data<float>();
  float* pd = dx.mutable_data<float>();
  parallel_for(static_cast<int64_t>(t.size()), 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* d = pd + r * vocab;
      if (t[r] == ignore_index) {
        std::fill(d, d + vocab, 0.0f);
        continue;
      }
      if (stats.m[r] == -INFINITY) {  // a fully -inf row: its softmax is all zeros
        std::fill(d, d + vocab, 0.0f);
        d[t[r]] = -pg[r];
        continue;
      }
      kt.softmax_grad_row(px + r * vocab, d, vocab, stats.m[r], 1.0f / stats.s[r], t[r], pg[r]);
    }
  });
  return dx;
}

}  // namespace

array cross_entropy(const array& logits, const array& targets, int64_t ignore_index) {
  if (logits.ndim() == 0 || targets.shape() != shape_t(logits.shape().begin(), logits.shape().end() - 1)) {
    detail::fail("cross_entropy", "targets ", targets.to_string(), " must have the shape of logits ",
                 logits.to_string(), " without its last axis");
  }
  if (is_floating(targets.type()))
    detail::fail("cross_entropy", "targets must be integers, got ", targets.to_string());
  const int64_t vocab = logits.shape(-1);
  auto t = std::make_shared<const std::vector<int64_t>>(targets.to_vector<int64_t>());
  for (int64_t id : *t) {
    if (id != ignore_index && (id < 0 || id >= vocab)) {
      detail::fail("cross_entropy", "target ", id, " is outside [0, ", vocab, ")");
    }
  }
  array out = array::empty(targets.shape(), dtype::f32);
  const kernels::table* kt = kernels::active();
  auto stats = std::make_shared<row_stats>();
  {
    autograd::no_grad guard;
    const array x = detail::prepare(logits, dtype::f32);
    const float* px = x.data<float>();
    float* py = out.mutable_data<float>();
    const int64_t rows = static_cast<int64_t>(t->size());
    if (kt) stats->m.resize(rows), stats->s.resize(rows);
    parallel_for(rows, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t target = (*t)[r];
        if (target == ignore_index) {
          py[r] = 0.0f;
          continue;
        }
        const float* row = px + r * vocab;
        if (kt) {
          stats->s[r] = kt->exp_sum_row(row, vocab, &stats->m[r]);
          // As log_softmax: subtract separately, since m + log(s) would round log(s) away for huge m.
          py[r] =
              stats->m[r] == -INFINITY ? INFINITY : -((row[target] - stats->m[r]) - std::log(stats->s[r]));
          continue;
        }
        double m = -INFINITY, s = 0;
        for (int64_t i = 0; i < vocab; ++i) m = row[i] > m ? row[i] : m;
        if (m == -INFINITY) {  // no probability anywhere, as log_softmax says: the loss is +inf, not NaN
          py[r] = INFINITY;
          continue;
        }
        for (int64_t i = 0; i < vocab; ++i) s += std::exp(row[i] - m);
        py[r] = static_cast<float>(m + std::log(s) - row[target]);
      }
    });
  }
  if (autograd::is_recording()) {
    const array xd = detail::detach(logits), td = detail::detach(targets);
    autograd::record(out, {logits}, [xd, td, t, stats, ignore_index, kt](const array& ct) {
      if (kt)
        return std::vector<array>{
            astype(cross_entropy_grad(*kt, xd, *t, *stats, ct, ignore_index), xd.type())};
      const array p = softmax(astype(xd, dtype::f32), -1);
      const array valid =
          astype(not_equal(td, scalar(static_cast<double>(ignore_index), td.type())), dtype::f32);
      const array onehot =
          astype(equal(expand_dims(astype(td, dtype::i64), -1), arange(0, xd.shape(-1))), dtype::f32);
      const array dx =
          multiply(subtract(p, onehot), expand_dims(multiply(astype(ct, dtype::f32), valid), -1));
      return std::vector<array>{astype(dx, xd.type())};
    });
  }
  return is_floating(logits.type()) && logits.type() != dtype::f32 ? astype(out, logits.type()) : out;
}

}  // namespace mlxd
