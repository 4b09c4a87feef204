#include <immintrin.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "mlxd/core/dtype.h"
#include "mlxd/core/ops.h"

namespace mlxd {
namespace {

// The CPU's own F16C conversion (round to nearest even) is the independent oracle for f16.
__attribute__((target("f16c"))) uint16_t hardware_f32_to_f16(float x) {
  return static_cast<uint16_t>(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hardware_f16_to_f32(uint16_t h) {
  return _cvtsh_ss(h);
}

bool is_nan_f16(uint16_t h) {
  return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
}

TEST(Dtype, SizesNamesAndPromotion) {
  EXPECT_EQ(size_of(dtype::f32), 4u);
  EXPECT_EQ(size_of(dtype::bf16), 2u);
  EXPECT_EQ(size_of(dtype::i64), 8u);
  EXPECT_EQ(size_of(dtype::boolean), 1u);
  EXPECT_EQ(name(dtype::bf16), "bf16");
  EXPECT_EQ(promote_types(dtype::i32, dtype::f16), dtype::f16);
  EXPECT_EQ(promote_types(dtype::f16, dtype::bf16), dtype::f32);
  EXPECT_EQ(promote_types(dtype::u8, dtype::i32), dtype::i32);
  EXPECT_EQ(promote_types(dtype::boolean, dtype::u8), dtype::u8);
  EXPECT_EQ(promote_types(dtype::i32, dtype::i64), dtype::i64);
}

TEST(Dtype, EveryF16ValueWidensExactly) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C to compare with";
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float ours = f16_to_f32(bits), theirs = hardware_f16_to_f32(bits);
    if (is_nan_f16(bits)) {
      ASSERT_TRUE(std::isnan(ours)) << h;
      ASSERT_EQ(f32_to_f16(ours), hardware_f32_to_f16(theirs)) << "NaN payload of " << h;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(ours), std::bit_cast<uint32_t>(theirs)) << h;
      ASSERT_EQ(f32_to_f16(ours), bits) << "round trip of " << h;
    }
  }
}

TEST(Dtype, F32ToF16RoundsLikeTheHardware) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C to compare with";
  std::mt19937 rng(42);
  // Random bit patterns cover every exponent; the second loop hits exact halfway points between f16 values.
  for (int i = 0; i < 2'000'000; ++i) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    ASSERT_EQ(f32_to_f16(x), hardware_f32_to_f16(x)) << std::hexfloat << x;
  }
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo = f16_to_f32(static_cast<uint16_t>(h)), hi = f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = lo + (hi - lo) / 2;
    for (const float x : {mid, -mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      ASSERT_EQ(f32_to_f16(x), hardware_f32_to_f16(x)) << std::hexfloat << x;
    }
  }
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // the halfway point to the next binade rounds to infinity
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
}

// Independent bf16 rounding: pick the nearer of the two neighbours in double arithmetic, ties to even.
uint16_t bf16_oracle(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint16_t down = static_cast<uint16_t>(bits >> 16);
  const auto up = static_cast<uint16_t>(down + 1);
  const double dx = x, d_down = bf16_to_f32(down);
  const double d_up = ((up & 0x7f80) == 0x7f80) ? std::copysign(INFINITY, x) : bf16_to_f32(up);
  if (std::isinf(d_up) && (up & 0x7f) == 0) {
    // Next value is infinity: the overflow threshold sits halfway to 2^128.
    const double threshold = std::ldexp(1.0, 128) - std::ldexp(1.0, 128 - 9);
    return std::fabs(dx) >= threshold ? up : down;
  }
  const double e_down = std::fabs(dx - d_down), e_up = std::fabs(d_up - dx);
  if (e_down < e_up) return down;
  if (e_up < e_down) return up;
  return (down & 1) ? up : down;
}

TEST(Dtype, F32ToBf16RoundsToNearestEven) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2'000'000; ++i) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isnan(x) || std::isinf(x)) continue;
    ASSERT_EQ(f32_to_bf16(x), bf16_oracle(x)) << std::hexfloat << x;
  }
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);  // exact tie, rounds to the even neighbour
  EXPECT_EQ(f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);  // tie rounding up to even
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));  // signalling NaN
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    if ((bits & 0x7f80) == 0x7f80 && (bits & 0x7f)) continue;
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(bits)), bits) << h;
  }
}

TEST(Dtype, AstypeConvertsEveryPair) {
  for (int s = 0; s < n_dtypes; ++s) {
    for (int d = 0; d < n_dtypes; ++d) {
      const auto st = static_cast<dtype>(s), dt = static_cast<dtype>(d);
      if (is_quantized(st) || is_quantized(dt)) continue;  // quantized_test.cpp covers those
      std::vector<double> src = {0.0, 1.0, 2.5, 3.0, 100.0, 7.0};
      if (!is_floating(st)) src[2] = 2.0;
      if (st == dtype::boolean) src = {0, 1, 1, 0, 1, 1};
      const array b = astype(array::from(src, {2, 3}, st), dt);
      ASSERT_EQ(b.type(), dt);
      const auto got = b.to_vector<double>();
      for (size_t i = 0; i < src.size(); ++i) {
        double want = src[i];
        if (dt == dtype::boolean) want = want != 0;
        if (!is_floating(dt) && dt != dtype::boolean) want = std::trunc(want);
        ASSERT_EQ(got[i], want) << name(st) << " -> " << name(dt) << " at " << i;
      }
    }
  }
  const array negative = array::from({-3.7f, 2.9f}, {2});
  EXPECT_EQ(astype(negative, dtype::i32).to_vector<int32_t>(), (std::vector<int32_t>{-3, 2}));
  EXPECT_EQ(astype(astype(negative, dtype::i64), dtype::f16).to_vector<float>(), (std::vector<float>{-3, 2}));
}

// f32 <-> f16/bf16 of views whose rows are contiguous (a KV cache's block of positions) and of views that are
// not, each element against the scalar conversion; and into a strided destination (concatenate's windows).
TEST(Dtype, HalfConversionsOfStridedViewsMatchTheScalarOnes) {
  std::vector<float> v(3 * 10 * 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::ldexp(static_cast<float>(i % 97) - 48.3f, int(i % 7) - 3);
  const array x = array::from(v, {3, 10, 8});
  for (dtype half : {dtype::f16, dtype::bf16}) {
    const auto to_half = [&](float f) { return half == dtype::f16 ? f32_to_f16(f) : f32_to_bf16(f); };
    const auto to_f32 = [&](uint16_t h) { return half == dtype::f16 ? f16_to_f32(h) : bf16_to_f32(h); };
    const array h = astype(x, half);
    for (const array& view : {slice_axis(x, 1, 2, 9), transpose(x, {0, 2, 1}), slice_axis(x, 2, 1, 5)}) {
      const std::vector<float> want = contiguous(view).to_vector<float>();
      const array narrowed = astype(view, half);
      const uint16_t* got = contiguous(narrowed).data<uint16_t>();
      for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], to_half(want[i])) << name(half) << " " << i;
    }
    for (const array& view : {slice_axis(h, 1, 2, 9), transpose(h, {0, 2, 1}), slice_axis(h, 2, 1, 5)}) {
      const array packed = contiguous(view);
      const uint16_t* bits = packed.data<uint16_t>();
      const std::vector<float> got = astype(view, dtype::f32).to_vector<float>();
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], to_f32(bits[i])) << name(half) << " " << i;
    }
    // Widening into the strided windows of a concatenation along the middle axis.
    const array joined = concatenate({slice_axis(h, 1, 0, 4), slice_axis(x, 1, 4, 10)}, 1);
    ASSERT_EQ(joined.type(), dtype::f32);
    const std::vector<float> got = joined.to_vector<float>();
    const uint16_t* bits = h.data<uint16_t>();
    for (int64_t a = 0; a < 3; ++a)
      for (int64_t b = 0; b < 10; ++b)
        for (int64_t c = 0; c < 8; ++c) {
          const size_t i = static_cast<size_t>((a * 10 + b) * 8 + c);
          ASSERT_EQ(got[i], b < 4 ? to_f32(bits[i]) : v[i]) << name(half) << " " << i;
        }
  }
}

}  // namespace
}  // namespace mlxd
