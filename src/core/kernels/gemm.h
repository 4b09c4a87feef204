// mlxd's own f32 GEMM for CPUs with AVX-512 (gemm_avx512.cpp), in the BLIS layout: operands are packed into
// panels that stay in cache and a 14 x 32 register tile multiplies them. Each output is one chain of fused
// multiply-adds over k in order 0..k-1, whatever the shape, tiling or thread count, so a row of the product
// has the same bits whether it is computed alone or with any number of other rows.
#pragma once

#include <cstdint>
#include <functional>

#include "mlxd/core/dtype.h"
#include "mlxd/core/matmul_rows.h"

namespace mlxd::kernels {

inline constexpr int64_t gemm_mr = matmul_row_tile;   // rows of the register tile
inline constexpr int64_t gemm_nr = 32;                // columns of the register tile: two vectors of 16
inline constexpr int64_t gemm_kc_max = 384;           // depth of the deepest packed block
inline constexpr int64_t few_rows = matmul_few_rows;  // decode steps: see matmul_rows.h

// How B's storage (f32 either way round, f16, bf16, quantized rows) reaches the kernel. pack(p0, kc, j0, nc,
// out) writes b(p0 + p, j0 + c) for p < kc and c < nc into panels of gemm_nr columns: panel q holds column
// j0 + q * gemm_nr + c at out[q * kc * gemm_nr + p * gemm_nr + c], with zeros past nc. p0 is a multiple of
// `unit` (a quantized dtype's block), and so is kc except in the last block.
struct gemm_b_packer {
  std::function<void(int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out)> pack;
  int64_t unit;
};

// c = alpha * op(a) b for row-major c [m, n] and a [m, k] (or [k, m] when trans_a), b given by its packer.
// Needs an AVX-512 CPU (kernel level avx512 or above).
void gemm_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a,
                 const gemm_b_packer& b, float* c, int64_t ldc);
// The same for two f32 operands, op(b) = b [k, n] or, when trans_b, b^T for b [n, k]. When op(a) is large and
// b narrow it computes c^T = op(b)^T op(a)^T, which packs the narrow operand and streams the large one.
void sgemm_avx512(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc);

// Packers for an f32 b [k, n] (ld ldb) or, when trans_b, b = w^T for w [n, k] (rows ldb apart), and for
// weights stored as rows w [n, k] of f16 or bf16 bits (b = w^T).
gemm_b_packer pack_f32(const float* b, int64_t ldb, bool trans_b);
gemm_b_packer pack_f16_rows(const uint16_t* w, int64_t ld);
gemm_b_packer pack_bf16_rows(const uint16_t* w, int64_t ld);
// Weights stored as rows of blocks of a quantized dtype t (row_bytes apart), b = w^T; each value is
// dequantized exactly as dequantize_blocks does.
gemm_b_packer pack_quantized_rows(dtype t, const void* w, int64_t row_bytes);

}  // namespace mlxd::kernels
