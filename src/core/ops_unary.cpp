#include <cmath>

#include "detail.h"
#include "elementwise.h"
#include "kernels/kernels.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/row_ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace detail {
namespace {

constexpr int64_t grain = 1 << 14;

float sigmoid_ref(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

// The plain reference definition of every float unary function.
float unary_ref(unary_fn f, float x) {
  constexpr float k = 0.7978845608028654f;  // sqrt(2 / pi)
  switch (f) {
    case unary_fn::neg:
      return -x;
    case unary_fn::abs:
      return std::fabs(x);
    case unary_fn::exp:
      return std::exp(x);
    case unary_fn::expm1:
      return std::expm1(x);
    case unary_fn::log:
      return std::log(x);
    case unary_fn::sqrt:
      return std::sqrt(x);
    case unary_fn::rsqrt:
      return 1.0f / std::sqrt(x);
    case unary_fn::tanh:
      return std::tanh(x);
    case unary_fn::sigmoid:
      return sigmoid_ref(x);
    case unary_fn::silu:
      return x * sigmoid_ref(x);
    case unary_fn::gelu:
      return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
    case unary_fn::gelu_erf:
      return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
    case unary_fn::softplus:
      return std::max(x, 0.0f) + std::log1p(std::exp(-std::fabs(x)));
    case unary_fn::log_sigmoid:
      return std::min(x, 0.0f) - std::log1p(std::exp(-std::fabs(x)));
    case unary_fn::square:
      return x * x;
    case unary_fn::sign:
      return static_cast<float>((x > 0) - (x < 0));
    case unary_fn::gelu_grad: {
      const float u = k * (x + 0.044715f * x * x * x);
      const float t = std::tanh(u);
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
    }
    case unary_fn::gelu_erf_grad:
      return 0.5f * (1.0f + std::erf(x * 0.7071067811865476f)) +
             x * 0.3989422804014327f * std::exp(-0.5f * x * x);
    case unary_fn::count:
      break;
  }
  return x;
}

bool keeps_integers(unary_fn f) {
  return f == unary_fn::neg || f == unary_fn::abs || f == unary_fn::square || f == unary_fn::sign;
}

bool fast_kind(unary_fn f, kernels::unary_kind& kind) {
  switch (f) {
    case unary_fn::exp:
      kind = kernels::unary_kind::exp;
      return true;
    case unary_fn::sigmoid:
      kind = kernels::unary_kind::sigmoid;
      return true;
    case unary_fn::silu:
      kind = kernels::unary_kind::silu;
      return true;
    case unary_fn::tanh:
      kind = kernels::unary_kind::tanh;
      return true;
    case unary_fn::gelu:
      kind = kernels::unary_kind::gelu_tanh;
      return true;
    default:
      return false;
  }
}

array compute_unary(const array& a, unary_fn f) {
  const bool integer = !is_floating(a.type()) && keeps_integers(f) && a.type() != dtype::boolean;
  const dtype ct = integer ? a.type() : dtype::f32;
  const array in = prepare(a, ct);
  array out = array::empty(a.shape(), ct);
  if (integer) {
    dispatch(ct, [&]<class T>() {
      if constexpr (!std::is_same_v<T, bool>) {  // booleans take the float path
        const T* x = in.data<T>();
        T* y = out.mutable_data<T>();
        for (int64_t i = 0; i < in.size(); ++i) {
          const T v = x[i];
          y[i] = f == unary_fn::neg    ? static_cast<T>(-v)
                 : f == unary_fn::abs  ? static_cast<T>(v < 0 ? -v : v)
                 : f == unary_fn::sign ? static_cast<T>((v > 0) - (v < 0))
                                       : static_cast<T>(v * v);
        }
      }
    });
    return out;
  }
  const float* x = in.data<float>();
  float* y = out.mutable_data<float>();
  const kernels::table* fast = kernels::active();
  kernels::unary_kind kind{};
  if (fast && fast_kind(f, kind)) {
    parallel_for(in.size(), grain, [&](int64_t b, int64_t e) { fast->unary(kind, x + b, y + b, e - b); });
  } else {
    parallel_for(in.size(), grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = unary_ref(f, x[i]);
    });
  }
  return out;
}

// d f(x) / dx expressed with ops, given x and y = f(x).
array unary_derivative(unary_fn f, const array& x, const array& y) {
  switch (f) {
    case unary_fn::neg:
      return full(x.shape(), -1.0);
    case unary_fn::abs:
      return apply_unary(x, unary_fn::sign);
    case unary_fn::exp:
      return y;
    case unary_fn::expm1:
      return add(y, array(1.0f));
    case unary_fn::log:
      return divide(array(1.0f), x);
    case unary_fn::sqrt:
      return divide(array(0.5f), y);
    case unary_fn::rsqrt:
      return multiply(array(-0.5f), divide(y, x));
    case unary_fn::tanh:
      return subtract(array(1.0f), square(y));
    case unary_fn::sigmoid:
      return multiply(y, subtract(array(1.0f), y));
    case unary_fn::silu: {
      const array s = sigmoid(x);
      return multiply(s, add(array(1.0f), multiply(x, subtract(array(1.0f), s))));
    }
    case unary_fn::gelu:
      return apply_unary(x, unary_fn::gelu_grad);
    case unary_fn::gelu_erf:
      return apply_unary(x, unary_fn::gelu_erf_grad);
    case unary_fn::softplus:
      return sigmoid(x);
    case unary_fn::log_sigmoid:
      return sigmoid(neg(x));
    case unary_fn::square:
      return multiply(array(2.0f), x);
    default:
      return zeros(x.shape());
  }
}

}  // namespace

array detach(const array& a) {
  return array::view(a, a.shape(), a.strides(), a.offset());
}

array apply_unary(const array& a, unary_fn f) {
  array out;
  {
    autograd::no_grad guard;
    out = compute_unary(a, f);
    if (is_floating(a.type()) && a.type() != dtype::f32) out = astype(out, a.type());
  }
  if (is_floating(a.type())) {
    if (autograd::is_recording()) {
      const array x = detach(a), y = detach(out);
      autograd::record(out, {a}, [f, x, y](const array& ct) {
        const array xf = astype(x, dtype::f32), yf = astype(y, dtype::f32);
        return std::vector<array>{astype(multiply(ct, unary_derivative(f, xf, yf)), x.type())};
      });
    }
  }
  return out;
}

}  // namespace detail

using detail::unary_fn;
array neg(const array& a) {
  return detail::apply_unary(a, unary_fn::neg);
}
array abs(const array& a) {
  return detail::apply_unary(a, unary_fn::abs);
}
array exp(const array& a) {
  return detail::apply_unary(a, unary_fn::exp);
}
array expm1(const array& a) {
  return detail::apply_unary(a, unary_fn::expm1);
}
array log(const array& a) {
  return detail::apply_unary(a, unary_fn::log);
}
array sqrt(const array& a) {
  return detail::apply_unary(a, unary_fn::sqrt);
}
array rsqrt(const array& a) {
  return detail::apply_unary(a, unary_fn::rsqrt);
}
array tanh(const array& a) {
  return detail::apply_unary(a, unary_fn::tanh);
}
array sigmoid(const array& a) {
  return detail::apply_unary(a, unary_fn::sigmoid);
}
array silu(const array& a) {
  return detail::apply_unary(a, unary_fn::silu);
}
array gelu(const array& a) {
  return detail::apply_unary(a, unary_fn::gelu);
}
array gelu_erf(const array& a) {
  return detail::apply_unary(a, unary_fn::gelu_erf);
}
array softplus(const array& a) {
  return detail::apply_unary(a, unary_fn::softplus);
}
array log_sigmoid(const array& a) {
  return detail::apply_unary(a, unary_fn::log_sigmoid);
}
array square(const array& a) {
  return detail::apply_unary(a, unary_fn::square);
}
array operator-(const array& a) {
  return neg(a);
}

void exp_row(std::span<const float> x, std::span<float> y) {
  if (x.size() != y.size())
    detail::fail("exp_row", "input and output sizes differ: ", x.size(), " and ", y.size());
  const auto n = static_cast<int64_t>(x.size());
  if (const kernels::table* fast = kernels::active())
    return fast->unary(kernels::unary_kind::exp, x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) y[i] = detail::unary_ref(unary_fn::exp, x[i]);
}

float exp_sum_row(std::span<const float> x, float* m) {
  if (x.empty()) detail::fail("exp_sum_row", "the row is empty");
  const auto n = static_cast<int64_t>(x.size());
  if (const kernels::table* fast = kernels::active()) return fast->exp_sum_row(x.data(), n, m);
  float max = -INFINITY;
  for (const float v : x) max = v > max ? v : max;
  *m = max;
  if (max == -INFINITY) return 0.0f;
  double s = 0;
  for (const float v : x) s += std::exp(v - max);
  return static_cast<float>(s);
}

}  // namespace mlxd
