// The one way core multiplies f32 matrices. On an AVX-512 CPU, products of 2^15 multiply-adds or more with
// beta = 0 run mlxd's own GEMM (kernels/gemm.h), whose outputs do not depend on the split or the thread
// count; the rest call cblas_sgemm. OpenBLAS runs single-threaded (thread_pool.cpp sets it); a large product
// is cut into pieces fixed by its shape alone and the pieces run on mlxd's thread pool, so every output has
// the same bits whatever the thread count. OpenBLAS's own threading does not promise that: with its Haswell
// kernels (OPENBLAS_CORETYPE=Haswell, as this environment sets) on an AMD EPYC, 2 threads changed about a
// fifth of a [64, 4096] x [4096, 512] product's outputs.
#pragma once

#include <cstdint>

namespace mlxd::detail {

// c = alpha * op(a) op(b) + beta * c, row-major, op = transpose where asked; a is [m, k] (or [k, m]
// transposed), b is [k, n] (or [n, k] transposed), c is [m, n].
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace mlxd::detail
