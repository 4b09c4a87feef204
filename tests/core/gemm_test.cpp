// mlxd's own AVX-512 GEMM (src/core/kernels/gemm.h) against a double-precision oracle: every operand layout,
// edge sizes that leave partial register tiles, the f16 and bf16 weight packers, and the promise that each
// output is the same fma chain whatever the rows around it and the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/kernels/gemm.h"
#include "core/sgemm.h"
#include "mlxd/core/thread_pool.h"
#include "test_util.h"

namespace mlxd {
namespace {

bool has_avx512() {
  return best_kernel_level() >= kernel_level::avx512;
}

std::vector<float> values(uint64_t seed, int64_t n) {
  return test::randn(seed, {n}).to_vector<float>();
}

// c[i, j] = alpha * sum_p op(a)[i, p] b[p, j] in double; b(p, j) reads b [k, n] or, transposed, [n, k].
std::vector<double> oracle(const std::vector<float>& a, int64_t lda, bool ta, const std::vector<float>& b,
                           int64_t ldb, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                           std::vector<double>* magnitude) {
  std::vector<double> c(static_cast<size_t>(m * n));
  magnitude->assign(c.size(), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
        s += x * y;
        mag += std::fabs(x * y);
      }
      c[i * n + j] = alpha * s;
      (*magnitude)[i * n + j] = std::fabs(alpha) * mag;
    }
  }
  return c;
}

// Each output within k * 2^-23 of the sum of |terms| (an fma chain's error bound, with room), and columns
// past n (ldc > n) untouched.
void expect_near(const std::vector<float>& got, int64_t ldc, const std::vector<double>& want,
                 const std::vector<double>& mag, int64_t m, int64_t n, int64_t k, const std::string& what) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float g = got[i * ldc + j];
      if (j >= n) {
        ASSERT_EQ(g, -7.0f) << what << ": wrote past the row at " << i << ", " << j;
        continue;
      }
      const double bound = (static_cast<double>(k) + 2) * 1.2e-7 * mag[i * n + j] + 1e-30;
      ASSERT_LE(std::fabs(g - want[i * n + j]), bound) << what << ": element " << i << ", " << j;
    }
  }
}

TEST(Gemm, EveryLayoutAndEdgeMatchesTheOracle) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512";
  struct dims {
    int64_t m, n, k;
  };
  // Partial tiles in every direction, depth across several packed blocks with a ragged last one, a
  // single row and a single column.
  for (const dims d : {dims{1, 1, 1}, dims{15, 33, 7}, dims{29, 100, 300}, dims{100, 29, 513},
                       dims{14, 32, 256}, dims{1, 65, 1000}, dims{130, 1, 17}, dims{57, 290, 31}}) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        const int64_t lda = (ta ? d.m : d.k) + 3, ldb = (tb ? d.k : d.n) + 5, ldc = d.n + 2;
        const auto a = values(1, (ta ? d.k : d.m) * lda), b = values(2, (tb ? d.n : d.k) * ldb);
        std::vector<float> c(static_cast<size_t>(d.m * ldc), -7.0f);
        for (int64_t i = 0; i < d.m; ++i) std::fill_n(c.begin() + i * ldc, d.n, 123.0f);  // overwritten
        kernels::gemm_avx512(d.m, d.n, d.k, 0.75f, a.data(), lda, ta, kernels::pack_f32(b.data(), ldb, tb),
                             c.data(), ldc);
        std::vector<double> mag;
        const auto want = oracle(a, lda, ta, b, ldb, tb, d.m, d.n, d.k, 0.75f, &mag);
        expect_near(c, ldc, want, mag, d.m, d.n, d.k,
                    std::to_string(d.m) + "x" + std::to_string(d.n) + "x" + std::to_string(d.k) +
                        (ta ? " a^T" : " a") + (tb ? " b^T" : " b"));
      }
    }
  }
}

// An a of more than 8M values (a training step's [vocab, tokens] products) is packed in slabs of rows.
TEST(Gemm, ALargeAIsPackedInSlabsOfRows) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512";
  const int64_t m = 2100, n = 5, k = 4100;  // slabs of 2044 and 56 rows
  for (const bool ta : {false, true}) {
    const int64_t lda = ta ? m : k;
    const auto a = values(12, m * k), b = values(13, k * n);
    std::vector<float> c(static_cast<size_t>(m * n));
    kernels::gemm_avx512(m, n, k, 1.0f, a.data(), lda, ta, kernels::pack_f32(b.data(), n, false), c.data(),
                         n);
    std::vector<double> mag;
    const auto want = oracle(a, lda, ta, b, n, false, m, n, k, 1.0f, &mag);
    expect_near(c, n, want, mag, m, n, k, ta ? "a^T" : "a");
  }
}

TEST(Gemm, HalfPrecisionWeightRowsMatchTheirF32Values) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512";
  const int64_t m = 23, n = 45, k = 300, ld = k + 4;
  const auto x = values(3, m * k);
  for (const dtype t : {dtype::f16, dtype::bf16}) {
    const array w = test::randn(4, {n, ld}, t);
    const auto wf = astype(w, dtype::f32).to_vector<float>();  // exact: every half value is an f32
    std::vector<float> got(static_cast<size_t>(m * n)), want(got.size());
    const auto* bits = static_cast<const uint16_t*>(w.raw_data());
    const kernels::gemm_b_packer pack =
        t == dtype::f16 ? kernels::pack_f16_rows(bits, ld) : kernels::pack_bf16_rows(bits, ld);
    kernels::gemm_avx512(m, n, k, 1.0f, x.data(), k, false, pack, got.data(), n);
    kernels::gemm_avx512(m, n, k, 1.0f, x.data(), k, false, kernels::pack_f32(wf.data(), ld, true),
                         want.data(), n);
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << name(t);
  }
}

TEST(Gemm, QuantizedWeightRowsPackTheirDequantizedValues) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512";
  const int64_t m = 19, n = 37, k = 512 + 256;  // three depth blocks
  const auto x = values(10, m * k);
  for (const dtype t : {dtype::q8_0, dtype::q4_0, dtype::q4_k, dtype::q6_k}) {
    const array w = astype(test::randn(11, {n, k}), t);
    const auto wf = astype(w, dtype::f32).to_vector<float>();
    std::vector<float> got(static_cast<size_t>(m * n)), want(got.size());
    const int64_t row_bytes = k / block_size(t) * block_bytes(t);
    kernels::gemm_avx512(m, n, k, 1.0f, x.data(), k, false,
                         kernels::pack_quantized_rows(t, w.raw_data(), row_bytes), got.data(), n);
    kernels::gemm_avx512(m, n, k, 1.0f, x.data(), k, false, kernels::pack_f32(wf.data(), k, true),
                         want.data(), n);
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << name(t);
    // Through the op: a prompt of 19 rows takes the GEMM, within an fma chain's error of the exact product.
    const array xa = array::from(x, {m, k});
    const array fast = quantized_matmul(xa, w);
    kernel_level_guard guard(kernel_level::reference);
    EXPECT_TRUE(test::close(fast, quantized_matmul(xa, w), 0, 2e-4 * std::sqrt(static_cast<double>(k))))
        << name(t);
  }
}

TEST(Gemm, ARowHasTheSameBitsAloneInAnyBatchAndAtAnyThreadCount) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512";
  const int64_t n = 300, k = 700, rows = 61;
  const auto x = values(5, rows * k), w = values(6, n * k);
  auto product = [&](int64_t first, int64_t count) {
    std::vector<float> c(static_cast<size_t>(count * n));
    kernels::gemm_avx512(count, n, k, 1.0f, x.data() + first * k, k, false,
                         kernels::pack_f32(w.data(), k, true), c.data(), n);
    return c;
  };
  const int saved = num_threads();
  set_num_threads(2);
  const auto all = product(0, rows);
  set_num_threads(1);
  EXPECT_EQ(all, product(0, rows)) << "1 thread against 2";
  set_num_threads(saved);
  for (const int64_t first : {0, 13, 14, 40, 60}) {
    for (const int64_t count : {1, 2, 15}) {
      if (first + count > rows) continue;
      const auto part = product(first, count);
      ASSERT_EQ(0, std::memcmp(part.data(), all.data() + first * n, part.size() * sizeof(float)))
          << "rows " << first << ".." << first + count;
    }
  }
}

// A large op(a) beside a narrow b is computed as c^T = op(b)^T op(a)^T: the same fma chains, so the same bits
// as packing a, in every layout, with c's row stride kept.
TEST(Gemm, ALargeABesideANarrowBIsComputedTransposedWithTheSameBits) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU has no AVX-512";
  const int64_t m = 600, n = 9, k = 14000, ldc = n + 3;  // m * k above the 8M values of a slab
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      const int64_t lda = ta ? m : k, ldb = tb ? k : n;
      const auto a = values(14, m * k), b = values(15, k * n);
      std::vector<float> got(static_cast<size_t>(m * ldc), -7.0f), want(static_cast<size_t>(m * n));
      kernels::sgemm_avx512(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, got.data(), ldc);
      kernels::gemm_avx512(m, n, k, 0.5f, a.data(), lda, ta, kernels::pack_f32(b.data(), ldb, tb),
                           want.data(), n);
      for (int64_t i = 0; i < m; ++i) {
        ASSERT_EQ(0, std::memcmp(got.data() + i * ldc, want.data() + i * n, n * sizeof(float)))
            << "row " << i << (ta ? " a^T" : " a") << (tb ? " b^T" : " b");
        ASSERT_EQ(got[i * ldc + n], -7.0f) << "wrote past row " << i;
      }
      if (ta || tb) continue;
      std::vector<double> mag;  // and near the oracle, checked in one layout (the oracle is slow)
      const auto exact = oracle(a, lda, ta, b, ldb, tb, m, n, k, 0.5f, &mag);
      std::vector<float> packed(want);
      expect_near(packed, n, exact, mag, m, n, k, "a b");
    }
  }
}

// The one entry point core uses: products at the AVX-512 level go to this GEMM, and below it (or with beta)
// to OpenBLAS, both near the oracle.
TEST(Gemm, SgemmAtEveryLevelMatchesTheOracle) {
  const int64_t m = 40, n = 70, k = 90;
  const auto a = values(7, m * k), b = values(8, k * n), c0 = values(9, m * n);
  std::vector<double> mag;
  const auto prod = oracle(a, k, false, b, n, false, m, n, k, 1.0f, &mag);
  for (kernel_level level : test::fast_levels()) {
    kernel_level_guard guard(level);
    for (const float beta : {0.0f, 1.0f}) {
      std::vector<float> c = c0;
      detail::sgemm(false, false, m, n, k, 2.0f, a.data(), k, b.data(), n, beta, c.data(), n);
      for (int64_t i = 0; i < m * n; ++i) {
        const double want = 2.0 * prod[i] + beta * c0[i];
        ASSERT_LE(std::fabs(c[i] - want), 2 * (k + 2) * 1.2e-7 * mag[i] + 1e-6 * std::fabs(c0[i]))
            << "element " << i << ", beta " << beta << ", level " << kernel_level_name(level);
      }
    }
  }
}

}  // namespace
}  // namespace mlxd
