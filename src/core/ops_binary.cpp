#include <cmath>
#include <cstring>

#include "detail.h"
#include "elementwise.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace detail {
namespace {

bool is_comparison(binary_fn f) {
  return f >= binary_fn::eq;
}

// The op is a template parameter so each inner loop is specialised and vectorisable.
template <binary_fn F, class T>
inline T binary_ref(T x, T y) {
  if constexpr (F == binary_fn::add) return static_cast<T>(x + y);
  if constexpr (F == binary_fn::sub) return static_cast<T>(x - y);
  if constexpr (F == binary_fn::mul) return static_cast<T>(x * y);
  if constexpr (F == binary_fn::div) return static_cast<T>(x / y);
  if constexpr (F == binary_fn::pow) return static_cast<T>(std::pow(x, y));
  if constexpr (F == binary_fn::max) return x != x ? x : (y != y ? y : (x > y ? x : y));  // NaN propagates
  if constexpr (F == binary_fn::min) return x != x ? x : (y != y ? y : (x < y ? x : y));
  if constexpr (F == binary_fn::eq) return x == y;
  if constexpr (F == binary_fn::ne) return x != y;
  if constexpr (F == binary_fn::lt) return x < y;
  if constexpr (F == binary_fn::le) return x <= y;
  if constexpr (F == binary_fn::gt) return x > y;
  if constexpr (F == binary_fn::ge) return x >= y;
  return x;
}

// The result dtype. A 0-d float operand (a literal like 2.0f) adopts the other operand's float type.
dtype result_type(const array& a, const array& b, binary_fn f) {
  dtype t = promote_types(a.type(), b.type());
  if (a.ndim() == 0 && b.ndim() > 0 && is_floating(b.type()) && is_floating(a.type())) t = b.type();
  if (b.ndim() == 0 && a.ndim() > 0 && is_floating(a.type()) && is_floating(b.type())) t = a.type();
  if ((f == binary_fn::div || f == binary_fn::pow) && !is_floating(t)) t = dtype::f32;
  if (t == dtype::boolean && !is_comparison(f))
    t = f == binary_fn::max || f == binary_fn::min ? t : dtype::i32;
  return t;
}

// out[i] = f(a[i], b[i]) where a and b are broadcast views of the output shape and out is contiguous.
template <binary_fn F, class T, class R>
void binary_loop(const array& a, const array& b, const array& out) {
  const T* pa = static_cast<const T*>(a.buffer()->data());
  const T* pb = static_cast<const T*>(b.buffer()->data());
  R* po = out.mutable_data<R>();
  const int nd = out.ndim();
  const int64_t inner = nd ? out.shape().back() : 1;
  const int64_t sa = nd ? a.strides().back() : 0, sb = nd ? b.strides().back() : 0;
  const int64_t rows = inner ? out.size() / inner : 0;
  // Elements [j0, j1) of row r.
  auto segment = [&](int64_t r, int64_t j0, int64_t j1) {
    int64_t oa = a.offset(), ob = b.offset(), rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t i = rem % out.shape()[d];
      rem /= out.shape()[d];
      oa += i * a.strides()[d];
      ob += i * b.strides()[d];
    }
    const T* x = pa + oa;
    const T* y = pb + ob;
    R* o = po + r * inner;
    if (sa == 1 && sb == 1) {
      for (int64_t j = j0; j < j1; ++j) o[j] = static_cast<R>(binary_ref<F, T>(x[j], y[j]));
    } else if (sa == 1 && sb == 0) {
      for (int64_t j = j0; j < j1; ++j) o[j] = static_cast<R>(binary_ref<F, T>(x[j], y[0]));
    } else if (sa == 0 && sb == 1) {
      for (int64_t j = j0; j < j1; ++j) o[j] = static_cast<R>(binary_ref<F, T>(x[0], y[j]));
    } else {
      for (int64_t j = j0; j < j1; ++j) o[j] = static_cast<R>(binary_ref<F, T>(x[j * sa], y[j * sb]));
    }
  };
  constexpr int64_t grain = 1 << 15;
  if (rows == 1) {  // one long row (the collapsed contiguous case): split it
    parallel_for(inner, grain, [&](int64_t begin, int64_t end) { segment(0, begin, end); });
    return;
  }
  parallel_for(rows, std::max<int64_t>(1, grain / std::max<int64_t>(inner, 1)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t r = begin; r < end; ++r) segment(r, 0, inner);
               });
}

array compute_binary(const array& a, const array& b, binary_fn f, dtype t) {
  const shape_t shape = broadcast_shapes(a.shape(), b.shape());
  const dtype ct = compute_dtype(is_comparison(f) ? promote_types(a.type(), b.type()) : t);
  array ac = broadcast_to(a.type() == ct ? a : astype(a, ct), shape);
  array bc = broadcast_to(b.type() == ct ? b : astype(b, ct), shape);
  const array result = array::empty(shape, is_comparison(f) ? dtype::boolean : ct);
  if (result.size() == 0) return result;
  array out = result;
  if (ac.is_contiguous() && bc.is_contiguous() && out.ndim() > 1) {
    // Same layout everywhere: one long row vectorises best.
    ac = reshape(ac, {ac.size()});
    bc = reshape(bc, {bc.size()});
    out = reshape(out, {out.size()});
  }
  dispatch(ct, [&]<class T>() {
    auto run = [&]<binary_fn F>() {
      if constexpr (F >= binary_fn::eq) {
        binary_loop<F, T, uint8_t>(ac, bc, out);
      } else if constexpr (std::is_same_v<T, bool> && F != binary_fn::max && F != binary_fn::min) {
        fail("binary", "no arithmetic on bool");  // result_type never asks for it
      } else {
        binary_loop<F, T, T>(ac, bc, out);
      }
    };
    switch (f) {
      case binary_fn::add:
        return run.template operator()<binary_fn::add>();
      case binary_fn::sub:
        return run.template operator()<binary_fn::sub>();
      case binary_fn::mul:
        return run.template operator()<binary_fn::mul>();
      case binary_fn::div:
        return run.template operator()<binary_fn::div>();
      case binary_fn::pow:
        return run.template operator()<binary_fn::pow>();
      case binary_fn::max:
        return run.template operator()<binary_fn::max>();
      case binary_fn::min:
        return run.template operator()<binary_fn::min>();
      case binary_fn::eq:
        return run.template operator()<binary_fn::eq>();
      case binary_fn::ne:
        return run.template operator()<binary_fn::ne>();
      case binary_fn::lt:
        return run.template operator()<binary_fn::lt>();
      case binary_fn::le:
        return run.template operator()<binary_fn::le>();
      case binary_fn::gt:
        return run.template operator()<binary_fn::gt>();
      case binary_fn::ge:
        return run.template operator()<binary_fn::ge>();
      case binary_fn::count:
        break;
    }
  });
  return result;
}

// Cotangents of both operands, in f32, before unbroadcasting.
// Cotangents of x and y; an empty array for a side that is not needed (an input without a tape node, such as
// an attention mask or a constant scale), so its product and broadcast reduction are never computed.
std::pair<array, array> binary_vjp(binary_fn f, const array& ct, const array& x, const array& y,
                                   const array& out, bool need_x, bool need_y) {
  array gx, gy;
  switch (f) {
    case binary_fn::add:
      gx = ct, gy = ct;
      break;
    case binary_fn::sub:
      gx = ct;
      if (need_y) gy = neg(ct);
      break;
    case binary_fn::mul:
      if (need_x) gx = multiply(ct, y);
      if (need_y) gy = multiply(ct, x);
      break;
    case binary_fn::div:
      if (need_x) gx = divide(ct, y);
      if (need_y) gy = neg(divide(multiply(ct, out), y));
      break;
    case binary_fn::pow:
      if (need_x) gx = multiply(ct, multiply(y, power(x, subtract(y, array(1.0f)))));
      if (need_y) {
        // d/dy x^y = x^y log x, taken as 0 where x == 0 (the limit for y > 0).
        const array logx = where(equal(x, array(0.0f)), zeros_like(x), log(x));
        gy = multiply(ct, multiply(out, logx));
      }
      break;
    case binary_fn::max:
    case binary_fn::min: {
      const array pick_x = f == binary_fn::max ? greater_equal(x, y) : less_equal(x, y);
      const array zero = zeros({}, dtype::f32);
      gx = where(pick_x, ct, zero), gy = where(pick_x, zero, ct);
      break;
    }
    default:
      gx = zeros_like(ct), gy = zeros_like(ct);
  }
  return {need_x ? gx : array(), need_y ? gy : array()};
}

}  // namespace

array apply_binary(const array& a, const array& b, binary_fn f, const char* op) {
  const dtype t = result_type(a, b, f);
  array out;
  {
    autograd::no_grad guard;
    try {
      out = compute_binary(a, b, f, t);
    } catch (const std::invalid_argument&) {
      fail(op, "operands ", a.to_string(), " and ", b.to_string(), " do not broadcast");
    }
    if (out.type() != t && !is_comparison(f)) out = astype(out, t);
  }
  if (is_floating(t) && !is_comparison(f)) {
    if (autograd::is_recording()) {
      const array x = detach(a), y = detach(b), o = detach(out);
      const bool need_x = a.grad_node() != nullptr, need_y = b.grad_node() != nullptr;
      autograd::record(out, {a, b}, [f, x, y, o, need_x, need_y](const array& ct) {
        auto f32 = [](const array& v) { return astype(v, dtype::f32); };
        auto [ga, gb] = binary_vjp(f, f32(ct), f32(x), f32(y), f32(o), need_x, need_y);
        auto back = [](const array& g, const array& like, bool need) {
          return need && is_floating(like.type()) ? astype(unbroadcast(g, like.shape()), like.type())
                                                  : array();
        };
        return std::vector<array>{back(ga, x, need_x), back(gb, y, need_y)};
      });
    }
  }
  return out;
}

}  // namespace detail

using detail::binary_fn;
array add(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::add, "add");
}
array subtract(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::sub, "subtract");
}
array multiply(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::mul, "multiply");
}
array divide(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::div, "divide");
}
array power(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::pow, "power");
}
array maximum(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::max, "maximum");
}
array minimum(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::min, "minimum");
}
array equal(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::eq, "equal");
}
array not_equal(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::ne, "not_equal");
}
array less(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::lt, "less");
}
array less_equal(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::le, "less_equal");
}
array greater(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::gt, "greater");
}
array greater_equal(const array& a, const array& b) {
  return detail::apply_binary(a, b, binary_fn::ge, "greater_equal");
}
array operator+(const array& a, const array& b) {
  return add(a, b);
}
array operator-(const array& a, const array& b) {
  return subtract(a, b);
}
array operator*(const array& a, const array& b) {
  return multiply(a, b);
}
array operator/(const array& a, const array& b) {
  return divide(a, b);
}

array where(const array& cond, const array& a, const array& b) {
  const shape_t shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape()));
  const dtype t = detail::result_type(a, b, binary_fn::max);
  array out = array::empty(shape, t);
  {
    autograd::no_grad guard;
    const array c = broadcast_to(astype(cond, dtype::boolean), shape);
    const array x = broadcast_to(astype(a, t), shape), y = broadcast_to(astype(b, t), shape);
    const uint8_t* pc = static_cast<const uint8_t*>(c.buffer()->data());
    const size_t w = size_of(t);
    const uint8_t* px = static_cast<const uint8_t*>(x.buffer()->data());
    const uint8_t* py = static_cast<const uint8_t*>(y.buffer()->data());
    uint8_t* po = out.mutable_data<uint8_t>();
    std::vector<int64_t> oc, ox, oy;
    detail::for_each_offset(shape, c.strides(), c.offset(), [&](int64_t o) { oc.push_back(o); });
    detail::for_each_offset(shape, x.strides(), x.offset(), [&](int64_t o) { ox.push_back(o); });
    detail::for_each_offset(shape, y.strides(), y.offset(), [&](int64_t o) { oy.push_back(o); });
    for (size_t i = 0; i < oc.size(); ++i) {
      std::memcpy(po + i * w, pc[oc[i]] ? px + ox[i] * w : py + oy[i] * w, w);
    }
  }
  if (is_floating(t)) {
    if (autograd::is_recording()) {
      const array c = detail::detach(cond), x = detail::detach(a), y = detail::detach(b);
      const bool need_x = a.grad_node() != nullptr, need_y = b.grad_node() != nullptr;
      autograd::record(out, {a, b}, [c, x, y, need_x, need_y](const array& ct) {
        const array zero = zeros({}, ct.type());
        auto back = [](bool need, const auto& g, const array& like) {
          return need && is_floating(like.type()) ? astype(unbroadcast(g(), like.shape()), like.type())
                                                  : array();
        };
        return std::vector<array>{back(
                                      need_x, [&] { return where(c, ct, zero); }, x),
                                  back(
                                      need_y, [&] { return where(c, zero, ct); }, y)};
      });
    }
  }
  return out;
}

array clip(const array& a, std::optional<double> lo, std::optional<double> hi) {
  if (lo && hi && *lo > *hi) detail::fail("clip", "lower bound ", *lo, " exceeds upper bound ", *hi);
  array out = a;
  if (lo) out = maximum(out, scalar(*lo, a.type()));
  if (hi) out = minimum(out, scalar(*hi, a.type()));
  return out;
}

}  // namespace mlxd
