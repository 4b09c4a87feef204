#include "mlxd/core/random.h"

#include <cmath>
#include <numbers>

#include "detail.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::random {
namespace {

constexpr uint32_t philox_m0 = 0xD2511F53u, philox_m1 = 0xCD9E8D57u;
constexpr uint32_t philox_w0 = 0x9E3779B9u, philox_w1 = 0xBB67AE85u;

// The four words for element `i` of a draw with key `k`.
void words(key k, uint64_t i, uint32_t out[4]) {
  const uint32_t counter[4] = {static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32),
                               static_cast<uint32_t>(k.stream), static_cast<uint32_t>(k.stream >> 32)};
  philox(counter, k.seed, out);
}

// (0, 1]: never 0, so log() of it is finite.
float open_unit(uint32_t w) {
  return (static_cast<float>(w >> 8) + 1.0f) * 0x1p-24f;
}

template <class F>
array fill(const shape_t& shape, dtype t, F value_at) {
  array out = array::empty(shape, dtype::f32);
  float* p = out.mutable_data<float>();
  parallel_for(out.size(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] = value_at(static_cast<uint64_t>(i));
  });
  return t == dtype::f32 ? out : astype(out, t);
}

}  // namespace

void philox(const uint32_t counter[4], uint64_t seed, uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(philox_m0) * c0, p1 = static_cast<uint64_t>(philox_m1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0,
                   n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += philox_w0;
    k1 += philox_w1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

key split(key k, uint64_t index) {
  uint32_t w[4];
  const uint32_t counter[4] = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                               static_cast<uint32_t>(k.stream), 0xFFFFFFFFu};
  philox(counter, k.seed, w);
  return {(static_cast<uint64_t>(w[1]) << 32) | w[0], (static_cast<uint64_t>(w[3]) << 32) | w[2]};
}

array uniform(key k, const shape_t& shape, float lo, float hi, dtype t) {
  if (!is_floating(t)) detail::fail("uniform", "dtype must be a float, got ", name(t));
  if (!(lo < hi)) detail::fail("uniform", "need lo < hi, got [", lo, ", ", hi, ")");
  return fill(shape, t, [=](uint64_t i) {
    uint32_t w[4];
    words(k, i, w);
    const float u = static_cast<float>(w[0] >> 8) * 0x1p-24f;  // [0, 1)
    const float v = lo + (hi - lo) * u;
    return v < hi ? v : lo;  // rounding must not reach hi
  });
}

array normal(key k, const shape_t& shape, float mean, float stddev, dtype t) {
  if (!is_floating(t)) detail::fail("normal", "dtype must be a float, got ", name(t));
  if (!(stddev >= 0)) detail::fail("normal", "stddev must be >= 0, got ", stddev);
  return fill(shape, t, [=](uint64_t i) {
    uint32_t w[4];
    words(k, i, w);
    const double r = std::sqrt(-2.0 * std::log(static_cast<double>(open_unit(w[0]))));
    const double theta = 2.0 * std::numbers::pi * (static_cast<double>(w[1]) * 0x1p-32);
    return static_cast<float>(mean + stddev * r * std::cos(theta));
  });
}

array categorical(key k, const array& logits, int axis) {
  if (!is_floating(logits.type()))
    detail::fail("categorical", "logits must be floats, got ", logits.to_string());
  const int ax = detail::normalize_axis(axis, logits.ndim(), "categorical");
  // Gumbel-max: argmax(logits + g) with g = -log(-log(u)) samples the softmax distribution.
  const array g = fill(logits.shape(), dtype::f32, [=](uint64_t i) {
    uint32_t w[4];
    words(k, i, w);
    const double u = std::min(static_cast<double>(open_unit(w[0])), 1.0 - 0x1p-25);
    return static_cast<float>(-std::log(-std::log(u)));
  });
  return argmax(add(astype(logits, dtype::f32), g), ax);
}

array dropout(key k, const array& x, float p) {
  if (!is_floating(x.type())) detail::fail("dropout", "x must be floats, got ", x.to_string());
  if (!(p >= 0.0f && p < 1.0f)) detail::fail("dropout", "p must be in [0, 1), got ", p);
  if (p == 0.0f) return x;
  const float keep_scale = 1.0f / (1.0f - p);
  const array mask = fill(x.shape(), dtype::f32, [=](uint64_t i) {
    uint32_t w[4];
    words(k, i, w);
    return static_cast<float>(w[0] >> 8) * 0x1p-24f >= p ? keep_scale : 0.0f;
  });
  if (x.type() == dtype::f32) return multiply(x, mask);
  return astype(multiply(astype(x, dtype::f32), mask), x.type());  // 1 / (1 - p) unrounded, one rounding
}

}  // namespace mlxd::random
