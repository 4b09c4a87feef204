#include "comm/reduce.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace mlxd::comm {
namespace {

template <class T, class Op>
void apply(T* acc, const T* x, int64_t n, Op op) {
  for (int64_t i = 0; i < n; ++i) acc[i] = op(acc[i], x[i]);
}

// Integers: sums wrap (computed unsigned, so there is no signed overflow).
template <class T>
void reduce_int(T* acc, const T* x, int64_t n, reduce_op op) {
  using U = std::make_unsigned_t<T>;
  switch (op) {
    case reduce_op::sum:
    case reduce_op::mean:
      apply(acc, x, n, [](T a, T b) { return static_cast<T>(static_cast<U>(a) + static_cast<U>(b)); });
      break;
    case reduce_op::max:
      apply(acc, x, n, [](T a, T b) { return std::max(a, b); });
      break;
    case reduce_op::min:
      apply(acc, x, n, [](T a, T b) { return std::min(a, b); });
      break;
    case reduce_op::count:
      break;
  }
}

// max/min propagate NaN from either side, as torch.maximum does.
float fmax_nan(float a, float b) {
  return (a != a || b != b) ? a + b : std::max(a, b);
}
float fmin_nan(float a, float b) {
  return (a != a || b != b) ? a + b : std::min(a, b);
}

template <float (*Load)(uint16_t), uint16_t (*Store)(float)>
void reduce_half(uint16_t* acc, const uint16_t* x, int64_t n, reduce_op op) {
  switch (op) {
    case reduce_op::sum:
    case reduce_op::mean:
      apply(acc, x, n, [](uint16_t a, uint16_t b) { return Store(Load(a) + Load(b)); });
      break;
    case reduce_op::max:
      apply(acc, x, n, [](uint16_t a, uint16_t b) { return Store(fmax_nan(Load(a), Load(b))); });
      break;
    case reduce_op::min:
      apply(acc, x, n, [](uint16_t a, uint16_t b) { return Store(fmin_nan(Load(a), Load(b))); });
      break;
    case reduce_op::count:
      break;
  }
}

}  // namespace

void check_reduction(const char* where, reduce_op op, dtype t) {
  if (op >= reduce_op::count) throw std::invalid_argument(std::string("[") + where + "] unknown reduction");
  if (t >= dtype::count) throw std::invalid_argument(std::string("[") + where + "] unknown dtype");
  if (is_quantized(t))
    throw std::invalid_argument(std::string("[") + where + "] cannot reduce " + std::string(name(t)) +
                                " arrays: convert them with astype first");
  if (op == reduce_op::mean && !is_floating(t))
    throw std::invalid_argument(std::string("[") + where + "] mean needs a floating dtype, got " +
                                std::string(name(t)));
}

void reduce_into(void* acc, const void* x, int64_t n, dtype t, reduce_op op) {
  switch (t) {
    case dtype::f32: {
      auto* a = static_cast<float*>(acc);
      auto* b = static_cast<const float*>(x);
      if (op == reduce_op::max)
        apply(a, b, n, fmax_nan);
      else if (op == reduce_op::min)
        apply(a, b, n, fmin_nan);
      else
        apply(a, b, n, [](float p, float q) { return p + q; });
      break;
    }
    case dtype::f16:
      reduce_half<f16_to_f32, f32_to_f16>(static_cast<uint16_t*>(acc), static_cast<const uint16_t*>(x), n,
                                          op);
      break;
    case dtype::bf16:
      reduce_half<bf16_to_f32, f32_to_bf16>(static_cast<uint16_t*>(acc), static_cast<const uint16_t*>(x), n,
                                            op);
      break;
    case dtype::i32:
      reduce_int(static_cast<int32_t*>(acc), static_cast<const int32_t*>(x), n, op);
      break;
    case dtype::i64:
      reduce_int(static_cast<int64_t*>(acc), static_cast<const int64_t*>(x), n, op);
      break;
    case dtype::u8:
      reduce_int(static_cast<uint8_t*>(acc), static_cast<const uint8_t*>(x), n, op);
      break;
    case dtype::boolean: {
      auto* a = static_cast<uint8_t*>(acc);
      auto* b = static_cast<const uint8_t*>(x);
      if (op == reduce_op::min)
        apply(a, b, n, [](uint8_t p, uint8_t q) { return uint8_t(p && q); });
      else
        apply(a, b, n, [](uint8_t p, uint8_t q) { return uint8_t(p || q); });
      break;
    }
    case dtype::q8_0:
    case dtype::q4_0:
    case dtype::q4_k:
    case dtype::q6_k:
    case dtype::count:
      throw std::invalid_argument("[reduce_into] unknown or quantized dtype");
  }
}

void divide_by(void* acc, int64_t n, dtype t, int world) {
  const float w = static_cast<float>(world);
  switch (t) {
    case dtype::f32: {
      auto* a = static_cast<float*>(acc);
      for (int64_t i = 0; i < n; ++i) a[i] /= w;
      break;
    }
    case dtype::f16: {
      auto* a = static_cast<uint16_t*>(acc);
      for (int64_t i = 0; i < n; ++i) a[i] = f32_to_f16(f16_to_f32(a[i]) / w);
      break;
    }
    case dtype::bf16: {
      auto* a = static_cast<uint16_t*>(acc);
      for (int64_t i = 0; i < n; ++i) a[i] = f32_to_bf16(bf16_to_f32(a[i]) / w);
      break;
    }
    default:
      throw std::invalid_argument("[divide_by] mean needs a floating dtype");
  }
}

}  // namespace mlxd::comm
