// The optimised f32 kernels, one table per instruction set (simd.inc compiled once per target).
// Inputs are contiguous; every kernel has a plain counterpart in the op files that tests compare it with.
#pragma once

#include <cstdint>

#include "mlxd/core/kernel_level.h"

namespace mlxd::kernels {

enum class unary_kind { exp, sigmoid, silu, tanh, gelu_tanh, count };

struct table {
  void (*unary)(unary_kind kind, const float* x, float* y, int64_t n);
  // y = softmax(x) or log_softmax(x) over one row of n values.
  void (*softmax_row)(const float* x, float* y, int64_t n, bool log);
  // Writes m = max(x) and returns sum(exp(x - m)) (0 with m = -inf for a fully -inf row), reading the row
  // without writing it: all the cross entropy's forward needs.
  float (*exp_sum_row)(const float* x, int64_t n, float* m);
  // y = (softmax(x) - onehot(target)) * scale from exp_sum_row's m and 1 / sum, in one pass: the cross
  // entropy's gradient row, with softmax's rounding.
  void (*softmax_grad_row)(const float* x, float* y, int64_t n, float m, float inv_sum, int64_t target,
                           float scale);
  // y = x * rsqrt(mean(x^2) + eps) * w over one row.
  void (*rms_norm_row)(const float* x, const float* w, float* y, int64_t n, float eps);
  // Dot products of a weight row (f32, f16 or bf16 bits) with f32 activations; the matrix-vector product's
  // core.
  float (*dot_f32)(const float* w, const float* x, int64_t n);
  float (*dot_f16)(const uint16_t* w, const float* x, int64_t n);
  float (*dot_bf16)(const uint16_t* w, const float* x, int64_t n);
  // out[r] = dot(w + r * ld, x) for the four rows r = 0..3, loading x once for all of them.
  void (*dot4_f32)(const float* w, int64_t ld, const float* x, int64_t n, float* out);
  void (*dot4_f16)(const uint16_t* w, int64_t ld, const float* x, int64_t n, float* out);
  void (*dot4_bf16)(const uint16_t* w, int64_t ld, const float* x, int64_t n, float* out);
  // out[i * ldo + r] = dot(w + r * ld, x + i * ldx) for r = 0..3 and the m rows i of x: batched decode's
  // core. Each output has the bits dot4 gives its row alone, so a sequence's result does not depend on its
  // batch.
  void (*dot4_rows_f32)(const float* w, int64_t ld, const float* x, int64_t ldx, int64_t m, int64_t n,
                        float* out, int64_t ldo);
  void (*dot4_rows_f16)(const uint16_t* w, int64_t ld, const float* x, int64_t ldx, int64_t m, int64_t n,
                        float* out, int64_t ldo);
  void (*dot4_rows_bf16)(const uint16_t* w, int64_t ld, const float* x, int64_t ldx, int64_t m, int64_t n,
                         float* out, int64_t ldo);
  // y = the f16 values of h as f32 (exact): the f16 KV cache's and half-precision ops' widening.
  void (*f16_to_f32_row)(const uint16_t* h, float* y, int64_t n);
  // y[j] += sum over i < n of p[i] * v[i * ld + j] for j < width: attention's probabilities times the
  // cached values (f32 or f16 rows), each row read once.
  void (*weighted_rows_f32)(const float* v, int64_t ld, const float* p, int64_t n, int64_t width, float* y);
  void (*weighted_rows_f16)(const uint16_t* v, int64_t ld, const float* p, int64_t n, int64_t width,
                            float* y);
};

// The table for the active level, or nullptr in reference mode.
const table* active();

const table& scalar_table();
const table& avx2_table();
const table& avx512_table();

}  // namespace mlxd::kernels
