// Block-quantized dtypes: quantize/dequantize accuracy, array rules, and quantized_matmul at every fast
// kernel level against the reference level (which dequantizes rows and accumulates in double). Byte-exact
// layouts against an independent NumPy implementation are checked in tests/io/gguf_quant_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "mlxd/core/autograd.h"
#include "mlxd/core/quantized.h"
#include "mlxd/core/thread_pool.h"
#include "test_util.h"

namespace mlxd {
namespace {

const dtype quantized_types[] = {dtype::q8_0, dtype::q4_0, dtype::q4_k, dtype::q6_k};

// Normal values with a few blocks made extreme: all zero, constant, one large outlier, tiny magnitudes.
array weights(uint64_t seed, int64_t rows, int64_t cols) {
  std::vector<float> v = test::randn(seed, {rows, cols}).to_vector<float>();
  if (cols >= 256 && rows >= 2) {
    std::fill(v.begin(), v.begin() + 256, 0.0f);
    std::fill(v.begin() + cols, v.begin() + cols + 32, 0.75f);
    v[static_cast<size_t>(cols) + 40] = 40.0f;
    for (int64_t i = cols + 64; i < cols + 128; ++i) v[static_cast<size_t>(i)] *= 1e-6f;
  }
  return array::from(v, {rows, cols});
}

TEST(Quantized, DtypeTraits) {
  EXPECT_EQ(block_size(dtype::q8_0), 32);
  EXPECT_EQ(block_size(dtype::q6_k), 256);
  EXPECT_EQ(block_bytes(dtype::q4_0), 18u);
  EXPECT_EQ(block_bytes(dtype::q4_k), 144u);
  EXPECT_EQ(block_size(dtype::f16), 1);
  EXPECT_EQ(block_bytes(dtype::f16), 2u);
  EXPECT_EQ(name(dtype::q4_k), "q4_k");
  EXPECT_TRUE(is_quantized(dtype::q6_k));
  EXPECT_FALSE(is_floating(dtype::q8_0));
  EXPECT_THROW(size_of(dtype::q8_0), std::invalid_argument);
  EXPECT_THROW(promote_types(dtype::q4_0, dtype::f32), std::invalid_argument);
  const array w = array::empty({3, 512}, dtype::q6_k);
  EXPECT_EQ(w.nbytes(), 3u * 2u * 210u);
  EXPECT_EQ(w.to_string(), "q6_k[3,512]");
}

// Dequantized values stay within what each format can represent. q8_0: half a step of amax / 127 plus the
// f16 rounding of the scale (127 steps x 2^-11 relative, or 127 x 2^-25 absolute where the scale is an f16
// subnormal); q4_0: one step of amax / 8 (the value opposite the extreme is capped at level 15) plus 8 x
// 2^-25. q4_k and q6_k on normal data: the RMS error of a uniform quantizer,
// step / sqrt(12), with steps of about (max - min) / 15 = 5 sigma / 15 over 32 values and 2 amax / 64 =
// 4.6 sigma / 64 over 16 values: 0.096 and 0.021 sigma; the bounds leave margin for the quantized scales.
TEST(Quantized, RoundTripErrorIsBounded) {
  const int64_t rows = 6, cols = 1024;
  const array x = weights(3, rows, cols);
  const auto xv = x.to_vector<float>();
  for (const dtype t : quantized_types) {
    SCOPED_TRACE(name(t));
    const array q = astype(x, t);
    ASSERT_EQ(q.type(), t);
    ASSERT_EQ(q.shape(), x.shape());
    const auto back = astype(q, dtype::f32).to_vector<float>();
    if (t == dtype::q8_0 || t == dtype::q4_0) {
      for (size_t b = 0; b < xv.size(); b += 32) {
        float amax = 0;
        for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(xv[i]));
        const float bound = t == dtype::q8_0 ? amax / 127 * (0.5f + 127 * 0x1p-11f) + 127 * 0x1p-25f
                                             : amax / 8 * 1.001f + 8 * 0x1p-25f;
        for (size_t i = b; i < b + 32; ++i) ASSERT_LE(std::fabs(back[i] - xv[i]), bound) << i;
      }
    } else {
      // Rows 2.. are plain normal data.
      double se = 0, ss = 0;
      for (size_t i = 2 * cols; i < xv.size(); ++i)
        se += (back[i] - xv[i]) * (back[i] - xv[i]), ss += xv[i] * xv[i];
      EXPECT_LT(std::sqrt(se / ss), t == dtype::q4_k ? 0.12 : 0.03);
      for (size_t i = 0; i < 256; ++i) ASSERT_EQ(back[i], 0.0f) << "an all-zero block stays zero";
    }
    // The f16 <-> quantized and quantized <-> quantized paths go through f32.
    EXPECT_TRUE(array_equal(astype(astype(x, dtype::bf16), t),
                            astype(astype(astype(x, dtype::bf16), dtype::f32), t)));
    EXPECT_EQ(astype(q, dtype::f16).type(), dtype::f16);
    for (const dtype other : quantized_types) {
      if (other == t) continue;  // astype to its own dtype returns q itself
      EXPECT_TRUE(array_equal(astype(q, other), astype(astype(q, dtype::f32), other)));
    }
  }
}

TEST(Quantized, RawBlockFunctionsCheckTheirArguments) {
  std::vector<float> x(64, 127.0f / 128), y(64);  // scale 1/128, exact in f16
  std::vector<std::byte> blocks(2 * 34);
  quantize_blocks(dtype::q8_0, x.data(), blocks.data(), 64);
  dequantize_blocks(dtype::q8_0, blocks.data(), y.data(), 64);
  EXPECT_EQ(y, x);
  EXPECT_THROW(quantize_blocks(dtype::q8_0, x.data(), blocks.data(), 48), std::invalid_argument);
  EXPECT_THROW(quantize_blocks(dtype::f32, x.data(), blocks.data(), 64), std::invalid_argument);
  EXPECT_THROW(dequantize_blocks(dtype::q4_k, blocks.data(), y.data(), 64), std::invalid_argument);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(quantize_blocks(dtype::q4_0, x.data(), blocks.data(), 64), std::invalid_argument);
}

TEST(Quantized, ArraysAreWholeRowsOfBlocks) {
  EXPECT_THROW(array::empty({4, 48}, dtype::q8_0), std::invalid_argument);
  EXPECT_THROW(array::empty({}, dtype::q4_0), std::invalid_argument);
  EXPECT_THROW(astype(test::randn(1, {2, 100}), dtype::q4_0), std::invalid_argument);
  EXPECT_THROW(astype(array::from(std::vector<int32_t>(64, 1), {2, 32}), dtype::q8_0), std::invalid_argument);
  const array x = test::randn(2, {4, 256});
  const array q = astype(x, dtype::q4_k);
  // Contiguous views of whole rows work; anything else is refused.
  const array rows = slice_axis(q, 0, 1, 3);
  EXPECT_TRUE(array_equal(astype(rows, dtype::f32), slice_axis(astype(q, dtype::f32), 0, 1, 3)));
  EXPECT_TRUE(
      array_equal(astype(reshape(q, {2, 512}), dtype::f32), reshape(astype(q, dtype::f32), {2, 512})));
  EXPECT_THROW(transpose(q), std::invalid_argument);
  EXPECT_THROW(reshape(q, {8, 128}), std::invalid_argument);
  EXPECT_THROW(slice_axis(q, 1, 0, 128), std::invalid_argument);
  EXPECT_TRUE(contiguous(q).shares_storage(q));
  // Element-wise ops and plain matmul refuse quantized arrays with an error naming the op.
  EXPECT_THROW(q.to_vector<float>(), std::invalid_argument);
  EXPECT_THROW(add(q, q), std::invalid_argument);
  EXPECT_THROW(exp(q), std::invalid_argument);
  EXPECT_THROW(sum(q), std::invalid_argument);
  try {
    matmul(test::randn(3, {2, 256}), q);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[matmul] block-quantized operand"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantized_matmul(test::randn(3, {2, 255}), q), std::invalid_argument);
  EXPECT_THROW(quantized_matmul(test::randn(3, {2, 256}), x), std::invalid_argument);
  // zeros() of a quantized dtype is all-zero blocks.
  EXPECT_TRUE(array_equal(astype(zeros({2, 32}, dtype::q4_0), dtype::f32), zeros({2, 32})));
}

TEST(Quantized, TakeDequantizesTheGatheredRows) {
  const array x = test::randn(4, {9, 64});
  for (const dtype t : quantized_types) {
    if (block_size(t) > 64) continue;
    const array q = astype(x, t);
    const array ids = array::from(std::vector<int32_t>{3, 0, 8, 3, -1}, {5});
    const array got = take(q, ids, 0);
    EXPECT_EQ(got.type(), dtype::f32);
    EXPECT_TRUE(array_equal(got, take(astype(q, dtype::f32), ids, 0))) << name(t);
    EXPECT_THROW(take(q, ids, 1), std::invalid_argument);
  }
}

// The worst case of the fast path's only approximation: x rounded to 8 bits per block of 32 (q8_0, q4_0) or
// 256 (k-quants) values, |x - x8| <= amax / 254 per value, so |y - y_exact| <= sum_p |w_p| amax(p) / 254;
// plus f32 rounding (1e-5 of sum |w x|). With `rounding_only`, just the f32 part: the fast levels all round x
// the same way and differ only in the order of f32 sums.
array error_bound(const array& x, const array& w, dtype t, bool rounding_only = false) {
  const int64_t k = x.shape(-1), m = x.size() / k, n = w.shape(0), bs = block_size(t);
  const auto xv = x.to_vector<float>(), wv = astype(w, dtype::f32).to_vector<float>();
  std::vector<float> e(xv.size());
  for (size_t b = 0; b < xv.size(); b += static_cast<size_t>(bs)) {
    float amax = 0;
    for (size_t i = b; i < b + static_cast<size_t>(bs); ++i) amax = std::max(amax, std::fabs(xv[i]));
    for (size_t i = b; i < b + static_cast<size_t>(bs); ++i) e[i] = amax / 254;
  }
  std::vector<float> bound(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        s += std::fabs(wv[j * k + p]) * e[i * k + p];
        mag += std::fabs(wv[j * k + p] * xv[i * k + p]);
      }
      bound[i * n + j] = static_cast<float>((rounding_only ? 0.0 : s * 1.0001) + 1e-5 * mag + 1e-30);
    }
  }
  return array::from(bound, {m, n});
}

struct shape_case {
  int64_t m, n, k;
};

TEST(Quantized, MatmulMatchesTheReferenceAtEveryLevel) {
  const shape_case cases[] = {{1, 7, 256},   {1, 33, 512}, {3, 5, 768},  {4, 9, 256},
                              {5, 17, 1024}, {9, 1, 256},  {2, 11, 4096}};
  // k = 288 and 800 leave 9 and 25 blocks of 32: groups of 16 with tails, and an odd last block.
  const shape_case cases32[] = {{1, 3, 288}, {6, 5, 800}, {1, 2, 32}};
  uint64_t seed = 10;
  for (const dtype t : quantized_types) {
    std::vector<shape_case> shapes(std::begin(cases), std::end(cases));
    if (block_size(t) == 32) shapes.insert(shapes.end(), std::begin(cases32), std::end(cases32));
    for (const shape_case& c : shapes) {
      SCOPED_TRACE(std::string(name(t)) + " m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) +
                   " k=" + std::to_string(c.k));
      const array w = astype(weights(++seed, c.n, c.k), t);
      const array x = multiply(test::randn(++seed, {c.m, c.k}), array(3.0f));
      array want;
      {
        kernel_level_guard guard(kernel_level::reference);
        want = quantized_matmul(x, w);
        // The reference is the double-precision product of the dequantized weights.
        EXPECT_TRUE(test::close(want, matmul(x, transpose(astype(w, dtype::f32))), 1e-6, 1e-6));
      }
      const auto bound = error_bound(x, w, t).to_vector<float>();
      const auto rounding = error_bound(x, w, t, true).to_vector<float>();
      const auto ref = want.to_vector<float>();
      std::vector<float> scalar;
      for (kernel_level level : test::fast_levels()) {
        kernel_level_guard guard(level);
        const array got = quantized_matmul(x, w);
        ASSERT_EQ(got.shape(), want.shape());
        const auto g = got.to_vector<float>();
        if (level == kernel_level::scalar) scalar = g;
        for (size_t i = 0; i < g.size(); ++i) {
          ASSERT_LE(std::fabs(g[i] - ref[i]), bound[i]) << kernel_level_name(level) << " output " << i;
          ASSERT_LE(std::fabs(g[i] - scalar[i]), rounding[i])
              << kernel_level_name(level) << " vs scalar, " << i;
        }
        // Each row alone gives the bits it gets in the batch.
        for (int64_t i = 0; i < c.m; ++i) {
          const array row = quantized_matmul(slice_axis(x, 0, i, i + 1), w);
          ASSERT_TRUE(array_equal(row, slice_axis(got, 0, i, i + 1)))
              << kernel_level_name(level) << " row " << i;
        }
      }
    }
  }
}

TEST(Quantized, MatmulIsTheSameForEveryThreadCountAndBatchShape) {
  const int saved = num_threads();
  for (const dtype t : quantized_types) {
    const array w = astype(weights(40, 301, 512), t);
    const array x = test::randn(41, {2, 3, 512});
    set_num_threads(1);
    const array one = quantized_matmul(x, w);
    set_num_threads(3);
    const array three = quantized_matmul(x, w);
    EXPECT_TRUE(array_equal(one, three)) << name(t);
    EXPECT_EQ(one.shape(), (shape_t{2, 3, 301}));
    EXPECT_TRUE(array_equal(quantized_matmul(reshape(x, {6, 512}), w), reshape(one, {6, 301}))) << name(t);
  }
  set_num_threads(saved);
}

TEST(Quantized, NonFiniteActivationsGiveNaNRows) {
  const array w = astype(weights(50, 8, 256), dtype::q4_k);
  std::vector<float> xv = test::randn(51, {2, 256}).to_vector<float>();
  xv[300] = std::numeric_limits<float>::infinity();
  for (kernel_level level : test::fast_levels()) {
    kernel_level_guard guard(level);
    const auto y = quantized_matmul(array::from(xv, {2, 256}), w).to_vector<float>();
    for (int j = 0; j < 8; ++j) {
      EXPECT_TRUE(std::isfinite(y[j]));
      EXPECT_TRUE(std::isnan(y[8 + j])) << kernel_level_name(level);
    }
  }
}

TEST(Quantized, GradientFlowsToTheActivations) {
  const array w = astype(weights(60, 6, 64), dtype::q8_0);
  const array x = test::randn(61, {2, 64});
  const auto [value, grads] =
      value_and_grad([&](const std::vector<array>& a) { return sum(quantized_matmul(a[0], w)); }, {x});
  // d sum(x W^T) / dx = 1 W: every row is the column sums of the dequantized weight.
  const array want = broadcast_to(sum(astype(w, dtype::f32), {0}, true), {2, 64});
  EXPECT_TRUE(test::close(grads[0], want, 1e-5, 1e-6));
}

}  // namespace
}  // namespace mlxd
