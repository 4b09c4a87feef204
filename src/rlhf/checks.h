// Argument checks shared by the RLHF losses.
#pragma once

#include <stdexcept>
#include <string>

#include "mlxd/core/array.h"
#include "mlxd/core/ops.h"

namespace mlxd::rlhf::detail {

[[noreturn]] inline void fail(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string("[") + fn + "] " + what);
}

// A float array of exactly `shape`, named `what` in the error.
inline void expect_float(const char* fn, const char* what, const array& a, const shape_t& shape) {
  if (!is_floating(a.type()) || a.shape() != shape) {
    fail(fn, std::string(what) + " must be a float array of shape " + shape_to_string(shape) + ", got " +
                 a.to_string());
  }
}

// A 1-d float array, returning its length.
inline int64_t expect_vector(const char* fn, const char* what, const array& a) {
  if (!is_floating(a.type()) || a.ndim() != 1) {
    fail(fn, std::string(what) + " must be a 1-d float array, got " + a.to_string());
  }
  return a.shape(0);
}

inline array f32(const array& a) {
  return astype(a, dtype::f32);
}

}  // namespace mlxd::rlhf::detail
