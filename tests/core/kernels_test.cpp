// Every optimised kernel level against the plain reference kernels, on varied and extreme inputs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "mlxd/core/row_ops.h"
#include "test_util.h"

namespace mlxd {
namespace {

using test::close;

array extreme_row() {
  const float inf = std::numeric_limits<float>::infinity();
  return array::from({0.0f,   -0.0f, 1e-8f,   -1e-8f, 0.3f,   -0.7f, 5.0f, -12.0f, 30.0f, -30.0f, 88.0f,
                      -87.0f, 88.8f, -104.0f, 1e30f,  -1e30f, inf,   -inf, 3e-4f,  0.62f, 0.63f,  -0.63f},
                     {22});
}

// Runs op at the reference level and at each fast level and compares.
void compare_levels(const std::function<array()>& op, double rtol, double atol) {
  array want;
  {
    kernel_level_guard guard(kernel_level::reference);
    want = op();
  }
  for (kernel_level level : test::fast_levels()) {
    kernel_level_guard guard(level);
    EXPECT_TRUE(close(op(), want, rtol, atol)) << "level " << kernel_level_name(level);
  }
}

TEST(Kernels, UnaryMatchReference) {
  const array x = concatenate({multiply(test::randn(1, {4099}), array(6.0f)), extreme_row()});
  compare_levels([&] { return exp(x); }, 2e-7, 1e-38);
  compare_levels([&] { return sigmoid(x); }, 3e-7, 1e-38);
  compare_levels([&] { return silu(x); }, 3e-7, 1e-30);
  compare_levels([&] { return tanh(x); }, 4e-7, 1e-30);
  compare_levels([&] { return gelu(x); }, 4e-7, 1e-7);
}

// exp_row (the sampler's exp on the calling thread) gives the array op's values at every level, in place too.
TEST(Kernels, ExpRowEqualsTheExpOp) {
  const array x = concatenate({multiply(test::randn(2, {40000}), array(6.0f)), extreme_row()});
  const std::vector<float> in = x.to_vector<float>();
  std::vector<kernel_level> levels = test::fast_levels();
  levels.push_back(kernel_level::reference);
  for (kernel_level level : levels) {
    kernel_level_guard guard(level);
    const std::vector<float> want = exp(x).to_vector<float>();
    std::vector<float> y(in.size()), same = in;
    exp_row(in, y);
    exp_row(same, same);
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(want[i])) << "x = " << in[i];
      ASSERT_EQ(std::bit_cast<uint32_t>(same[i]), std::bit_cast<uint32_t>(want[i])) << "x = " << in[i];
    }
  }
  std::vector<float> shorter(3);
  EXPECT_THROW(exp_row(in, shorter), std::invalid_argument);
}

// exp_sum_row (the sampler's softmax normaliser) at every level against a sum in double, on a
// vocabulary-sized row, a row whose max is huge, a row with one finite logit, and a row that is all -inf.
TEST(Kernels, ExpSumRowMatchesADoubleSum) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> rows = {multiply(test::randn(3, {128256}), array(6.0f)).to_vector<float>(),
                                          {1e30f, 1e30f - 1e24f, -3.0f, 0.0f},
                                          {-inf, -inf, 2.5f, -inf},
                                          {-inf, -inf}};
  std::vector<kernel_level> levels = test::fast_levels();
  levels.push_back(kernel_level::reference);
  for (kernel_level level : levels) {
    kernel_level_guard guard(level);
    for (const std::vector<float>& row : rows) {
      double max = -inf, sum = 0;
      for (float v : row) max = std::max<double>(max, v);
      for (float v : row) sum += max == -inf ? 0.0 : std::exp(static_cast<double>(v) - max);
      float m = 0;
      const float s = exp_sum_row(row, &m);
      EXPECT_EQ(m, static_cast<float>(max)) << kernel_level_name(level) << ", " << row.size() << " logits";
      EXPECT_NEAR(s, sum, 1e-5 * sum) << kernel_level_name(level) << ", " << row.size() << " logits";
    }
  }
  EXPECT_THROW(exp_sum_row(std::vector<float>{}, nullptr), std::invalid_argument);
}

TEST(Kernels, ExpUnderflowOverflowAndNan) {
  for (kernel_level level : test::fast_levels()) {
    kernel_level_guard guard(level);
    const auto y =
        exp(array::from({-200.0f, 200.0f, std::nanf(""), -INFINITY, INFINITY}, {5})).to_vector<float>();
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_EQ(y[1], INFINITY);
    EXPECT_TRUE(std::isnan(y[2]));
    EXPECT_EQ(y[3], 0.0f);
    EXPECT_EQ(y[4], INFINITY);
  }
}

// f16 -> f32 is exact: every one of the 65536 bit patterns, whole and as a strided view of rows, at every
// level, equals the scalar conversion (NaNs stay NaN).
TEST(Kernels, F16WideningIsExactForEveryValue) {
  array h = array::empty({256, 256}, dtype::f16);
  uint16_t* bits = h.mutable_data<uint16_t>();
  for (uint32_t i = 0; i < 65536; ++i) bits[i] = static_cast<uint16_t>(i);
  for (kernel_level level : test::fast_levels()) {
    kernel_level_guard guard(level);
    const std::vector<float> whole = astype(h, dtype::f32).to_vector<float>();
    const std::vector<float> strided = astype(slice_axis(h, 1, 3, 250), dtype::f32).to_vector<float>();
    for (uint32_t i = 0; i < 65536; ++i) {
      const float want = f16_to_f32(static_cast<uint16_t>(i));
      if (std::isnan(want)) {
        ASSERT_TRUE(std::isnan(whole[i])) << i;
      } else {
        ASSERT_EQ(std::bit_cast<uint32_t>(whole[i]), std::bit_cast<uint32_t>(want))
            << kernel_level_name(level) << " " << i;
      }
      const uint32_t row = i / 256, col = i % 256;
      if (col < 3 || col >= 250 || std::isnan(want)) continue;
      ASSERT_EQ(std::bit_cast<uint32_t>(strided[row * 247 + col - 3]), std::bit_cast<uint32_t>(want)) << i;
    }
  }
}

TEST(Kernels, SoftmaxMatchReference) {
  const array x = multiply(test::randn(2, {7, 1000}), array(10.0f));
  compare_levels([&] { return softmax(x, -1); }, 1e-5, 1e-9);
  compare_levels([&] { return log_softmax(x, -1); }, 1e-5, 1e-5);
  compare_levels([&] { return softmax(x, 0); }, 1e-5, 1e-9);
  // Rows with NaN (at every lane position) and rows shorter than a vector.
  const array with_nan = where(equal(arange(0, 37 * 5, 1, dtype::i32), scalar(40, dtype::i32)), array(NAN),
                               reshape(test::randn(9, {37 * 5}), {37 * 5}));
  compare_levels([&] { return softmax(reshape(with_nan, {5, 37}), -1); }, 1e-5, 1e-9);
  compare_levels([&] { return log_softmax(test::randn(10, {3, 5}), -1); }, 1e-6, 1e-6);
}

TEST(Kernels, SoftmaxStableForHugeAndMaskedRows) {
  const float inf = INFINITY;
  const array x = array::from({1e30f, 1e30f, -1e30f, -inf, -inf, -inf, 3.0f, -inf, 3.0f}, {3, 3});
  for (kernel_level level : {kernel_level::reference, best_kernel_level()}) {
    kernel_level_guard guard(level);
    EXPECT_TRUE(
        close(softmax(x), array::from({0.5f, 0.5f, 0.0f, 0, 0, 0, 0.5f, 0.0f, 0.5f}, {3, 3}), 1e-6, 0));
    const auto l = log_softmax(x).to_vector<float>();
    EXPECT_NEAR(l[0], -std::log(2.0f), 1e-6);
    EXPECT_FLOAT_EQ(l[2], -2e30f);  // exact log-probability, even where the probability underflows
    EXPECT_EQ(l[3], -inf);          // a fully masked row is -inf, never NaN
    EXPECT_NEAR(l[6], -std::log(2.0f), 1e-6);
  }
}

// The loss and its gradient at each level against the reference: wide rows, an ignored target, a row with a
// huge logit, a fully -inf row (loss +inf, gradient -1 at the target) and per-row weights in the cotangent.
TEST(Kernels, CrossEntropyAndItsGradientMatchReference) {
  const float inf = std::numeric_limits<float>::infinity();
  array x = multiply(test::randn(11, {6, 1000}), array(8.0f));
  x = where(equal(arange(0, 6000, 1, dtype::i32), scalar(2017, dtype::i32)), array(1e30f),
            reshape(x, {6000}));
  x = where(greater_equal(arange(0, 6000, 1, dtype::i32), scalar(5000, dtype::i32)), array(-inf), x);
  x = reshape(x, {6, 1000});
  const array t = array::from({3, 999, -100, 17, 0, 5}, {6}, dtype::i32);
  const array w = array::from({0.5f, -2.0f, 1.0f, 3.0f, 0.25f, 1.5f}, {6});
  compare_levels([&] { return cross_entropy(x, t, -100); }, 1e-6, 1e-5);
  compare_levels(
      [&] {
        return grad(
            [&](const std::vector<array>& v) { return sum(multiply(cross_entropy(v[0], t, -100), w)); },
            {x})[0];
      },
      1e-5, 1e-7);
  for (kernel_level level : test::fast_levels()) {
    kernel_level_guard guard(level);
    const auto loss = cross_entropy(x, t, -100).to_vector<float>();
    EXPECT_EQ(loss[2], 0.0f);  // ignored
    EXPECT_EQ(loss[5], inf);   // every logit -inf
    EXPECT_TRUE(std::isfinite(loss[3]));
  }
}

TEST(Kernels, RmsNormMatchReference) {
  const array x = test::randn(3, {9, 1031}), w = test::randn(4, {1031});
  compare_levels([&] { return rms_norm(x, w, 1e-5f); }, 2e-6, 1e-6);
  const array xh = astype(x, dtype::bf16);
  compare_levels([&] { return rms_norm(xh, w, 1e-6f); }, 1e-2, 1e-2);
}

TEST(Kernels, MatvecEveryWeightDtype) {
  for (const int64_t k : {1, 7, 16, 64, 100, 1027}) {
    const array x = test::randn(5, {1, k});
    for (const dtype t : {dtype::f32, dtype::f16, dtype::bf16}) {
      const array w = test::randn(6, {37, k}, t);
      compare_levels([&] { return matmul(x, transpose(w)); }, 1e-5, 1e-4);
    }
  }
}

// A few rows (several sequences decoding together) against the reference, and at every level each row
// bit-identical to the same row multiplied alone: batching sequences never changes what one of them gets.
// The widths cover every tail of the vector loops, and both ways a single row reads its four weight rows
// (one after another up to 8 KiB a row, interleaved beyond: 4100).
TEST(Kernels, FewRowMatmulMatchesReferenceAndSingleRows) {
  for (const int64_t k : {100, 116, 7, 4100}) {
    for (const int64_t rows : {2, 3, 4, 5, 6, 7, 8, 16, 17}) {
      const array x = test::randn(9, {rows, k});
      for (const dtype t : {dtype::f32, dtype::f16, dtype::bf16}) {
        const array w = test::randn(10, {70, k}, t);
        // Sums of 4100 products of unit normals (about 64 in size) carry a few 1e-4 of rounding.
        compare_levels([&] { return matmul(x, transpose(w)); }, 1e-5, k > 1000 ? 1e-3 : 1e-4);
        if (rows > 16) continue;  // beyond the few-row path a GEMM sums in its own order
        for (kernel_level level : test::fast_levels()) {
          kernel_level_guard guard(level);
          const array all = matmul(x, transpose(w));
          for (int64_t i = 0; i < rows; ++i) {
            const array one = matmul(slice(x, {i, 0}, {i + 1, k}), transpose(w));
            const array row = contiguous(slice(all, {i, 0}, {i + 1, 70}));
            ASSERT_EQ(0, std::memcmp(one.data<float>(), row.data<float>(), 70 * sizeof(float)))
                << "row " << i << " of " << rows << ", width " << k << ", " << name(t) << ", level "
                << kernel_level_name(level);
          }
        }
      }
    }
  }
}

TEST(Kernels, GemmMatchReference) {
  const array a = test::randn(7, {3, 65, 33}), b = test::randn(8, {33, 47});
  compare_levels([&] { return matmul(a, b); }, 1e-5, 1e-4);
  compare_levels([&] { return matmul(transpose(b), swapaxes(a, -1, -2)); }, 1e-5, 1e-4);
}

}  // namespace
}  // namespace mlxd
