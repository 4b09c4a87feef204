// Shared machinery of the elementwise ops.
#pragma once

#include "mlxd/core/array.h"

namespace mlxd::detail {

enum class unary_fn {
  neg,
  abs,
  exp,
  expm1,
  log,
  sqrt,
  rsqrt,
  tanh,
  sigmoid,
  silu,
  gelu,
  gelu_erf,
  softplus,
  log_sigmoid,
  square,
  sign,
  gelu_grad,
  gelu_erf_grad,
  count
};

enum class binary_fn { add, sub, mul, div, pow, max, min, eq, ne, lt, le, gt, ge, count };

array apply_unary(const array& a, unary_fn f);
array apply_binary(const array& a, const array& b, binary_fn f, const char* op);

// A handle to the same data without autograd history, safe to capture in a vjp of `a` itself.
array detach(const array& a);

}  // namespace mlxd::detail
