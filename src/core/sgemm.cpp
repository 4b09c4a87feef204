#include "sgemm.h"

#include <cblas.h>

#include <algorithm>

#include "kernels/gemm.h"
#include "mlxd/core/kernel_level.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::detail {
namespace {

// OpenBLAS re-packs the other operand for each piece, which costs less the longer the piece: about 512 rows
// or columns per piece, at least 2 pieces (so that two threads share a [512, 512] output) and at most 16 (a
// [2048, 288] x [288, 32000] head would otherwise re-pack its 2.4 MB input 62 times).
constexpr int64_t piece_target = 512, max_pieces = 16;
// Products below this many multiply-adds run as one piece.
constexpr int64_t min_split_macs = int64_t{1} << 20;
// From this many multiply-adds an AVX-512 CPU runs mlxd's own GEMM (kernels/gemm.h): about 1.8x OpenBLAS's
// Haswell kernels, which this environment selects, and each output's bits do not depend on the shape's split.
constexpr int64_t min_own_macs = int64_t{1} << 15;

void call(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda),
              b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (beta == 0.0f && k > 0 && m * n * k >= min_own_macs && active_kernel_level() >= kernel_level::avx512) {
    kernels::sgemm_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    return;
  }
  (void)num_threads();  // starting the pool sets OpenBLAS to one thread before its first product
  if (m * n * k < min_split_macs || std::max(m, n) < piece_target) {
    call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Pieces along the longer of the two output sides.
  const bool by_rows = m >= n;
  const int64_t len = by_rows ? m : n;
  const int64_t wanted = std::clamp<int64_t>(len / piece_target, 2, max_pieces);
  const int64_t piece = ((len + wanted - 1) / wanted + 63) / 64 * 64;  // a multiple of 64
  const int64_t n_pieces = (len + piece - 1) / piece;
  parallel_for(n_pieces, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t i = p * piece, size = std::min(piece, len - i);
      if (by_rows) {
        call(trans_a, trans_b, size, n, k, alpha, trans_a ? a + i : a + i * lda, lda, b, ldb, beta,
             c + i * ldc, ldc);
      } else {
        call(trans_a, trans_b, m, size, k, alpha, a, lda, trans_b ? b + i * ldb : b + i, ldb, beta, c + i,
             ldc);
      }
    }
  });
}

}  // namespace mlxd::detail
