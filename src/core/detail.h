// Internal helpers shared by the op implementations: errors, axes, element access and strided loops.
#pragma once

#include <cstdint>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/core/ops.h"

namespace mlxd::detail {

template <class... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  std::ostringstream os;
  os << '[' << op << "] ";
  (os << ... << parts);
  throw std::invalid_argument(os.str());
}

inline std::string describe(const array& a) {
  return a.to_string();
}

// Maps a possibly negative axis into [0, ndim).
int normalize_axis(int axis, int ndim, const char* op);
// Sorted, unique, normalised axes; empty input means all axes.
axes_t normalize_axes(const axes_t& axes, int ndim, const char* op);

struct f16_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

// Reads element `i` (in elements from `base`) of dtype `t` converted to T.
template <class T>
T load_as(const void* base, int64_t i, dtype t) {
  switch (t) {
    case dtype::f32:
      return static_cast<T>(static_cast<const float*>(base)[i]);
    case dtype::f16:
      return static_cast<T>(f16_to_f32(static_cast<const uint16_t*>(base)[i]));
    case dtype::bf16:
      return static_cast<T>(bf16_to_f32(static_cast<const uint16_t*>(base)[i]));
    case dtype::i32:
      return static_cast<T>(static_cast<const int32_t*>(base)[i]);
    case dtype::i64:
      return static_cast<T>(static_cast<const int64_t*>(base)[i]);
    case dtype::u8:
      return static_cast<T>(static_cast<const uint8_t*>(base)[i]);
    case dtype::boolean:
      return static_cast<T>(static_cast<const uint8_t*>(base)[i] != 0);
    default:
      break;
  }
  fail("load_as", "no element access for dtype ", name(t));
}

template <class T>
void store_as(void* base, int64_t i, dtype t, T v) {
  switch (t) {
    case dtype::f32:
      static_cast<float*>(base)[i] = static_cast<float>(v);
      return;
    case dtype::f16:
      static_cast<uint16_t*>(base)[i] = f32_to_f16(static_cast<float>(v));
      return;
    case dtype::bf16:
      static_cast<uint16_t*>(base)[i] = f32_to_bf16(static_cast<float>(v));
      return;
    case dtype::i32:
      static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v);
      return;
    case dtype::i64:
      static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v);
      return;
    case dtype::u8:
      static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v);
      return;
    case dtype::boolean:
      static_cast<uint8_t*>(base)[i] = v != T{} ? 1 : 0;
      return;
    default:
      break;
  }
  fail("store_as", "no element access for dtype ", name(t));
}

// Calls fn(element_offset) for every element of the view in row-major order.
template <class F>
void for_each_offset(const shape_t& shape, const shape_t& strides, int64_t offset, F&& fn) {
  const int nd = static_cast<int>(shape.size());
  if (shape_size(shape) == 0) return;
  if (nd == 0) {
    fn(offset);
    return;
  }
  shape_t index(nd, 0);
  const int64_t inner = shape[nd - 1];
  const int64_t inner_stride = strides[nd - 1];
  for (;;) {
    int64_t base = offset;
    for (int d = 0; d < nd - 1; ++d) base += index[d] * strides[d];
    for (int64_t j = 0; j < inner; ++j) fn(base + j * inner_stride);
    int d = nd - 2;
    for (; d >= 0; --d) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

// The types kernels compute in: f16/bf16 are widened to f32 first.
enum class compute_kind { f32, i32, i64, u8, boolean };
inline dtype compute_dtype(dtype t) {
  return (t == dtype::f16 || t == dtype::bf16) ? dtype::f32 : t;
}

// Calls fn.template operator()<T>() with T the C++ type of compute dtype t.
template <class F>
decltype(auto) dispatch(dtype t, F&& fn) {
  switch (t) {
    case dtype::f32:
      return fn.template operator()<float>();
    case dtype::i32:
      return fn.template operator()<int32_t>();
    case dtype::i64:
      return fn.template operator()<int64_t>();
    case dtype::u8:
      return fn.template operator()<uint8_t>();
    case dtype::boolean:
      return fn.template operator()<bool>();
    default:
      break;
  }
  fail("dispatch", "no kernel for dtype ", name(t));
}

// `a` converted to its compute dtype (or `t` if given) and made contiguous. Throws for a block-quantized `a`.
array prepare(const array& a, dtype t);

// Conversions to or from block-quantized dtypes, for copy_into (dst as there; float <-> quantized only).
void copy_quantized(const array& src, const array& dst);
// take() along a non-last axis of a block-quantized array: the gathered rows dequantized to f32. `idx` holds
// in-range, non-negative indices shaped `idx_shape`.
array take_quantized(const array& a, const std::vector<int64_t>& idx, const shape_t& idx_shape, int axis);

}  // namespace mlxd::detail
