// The fast quantized matrix-vector kernels, one table per instruction set (quant.inc compiled once per
// target). As ggml does, x is first quantized to 8 bits per row (act_block32 for q8_0/q4_0 weights,
// act_block256 for k-quants); a dot product then multiplies integers block by block and applies the block
// scales in f32. Results differ from the exact product of the stored weights with x only by x's 8-bit
// rounding (|error| <= sum |w| * amax(x block) / 254) and f32 rounding. The plain oracle is the reference
// path in ops_quantized.cpp, which dequantizes rows and accumulates in double.
#pragma once

#include <cstdint>

#include "core/quant/blocks.h"

namespace mlxd::kernels {

// out[r * out_stride] = w_row . x_r for the n_x (1 to max_dot_rows) activation rows x_r, which follow each
// other at x, n_blocks blocks apiece; w_row holds n_blocks weight blocks. Each output is computed with the
// same operations whatever n_x is, so batching rows does not change any bit.
using quant_dot_fn = void (*)(const void* w_row, const void* x, int n_x, int64_t n_blocks, float* out,
                              int64_t out_stride);
inline constexpr int max_dot_rows = 4;

struct quant_table {
  // Quantizes one row of k floats (k a multiple of the block size) to k / 32 or k / 256 blocks. A row with a
  // non-finite value gets a NaN scale, so the products it enters are NaN as in f32.
  void (*quantize_act32)(const float* x, quant::act_block32* y, int64_t k);
  void (*quantize_act256)(const float* x, quant::act_block256* y, int64_t k);
  quant_dot_fn dot_q8_0;
  quant_dot_fn dot_q4_0;
  quant_dot_fn dot_q4_k;
  quant_dot_fn dot_q6_k;
};

// The table for the active level, or nullptr in reference mode.
const quant_table* active_quant();

const quant_table& scalar_quant_table();
const quant_table& avx2_quant_table();
const quant_table& avx512_quant_table();
const quant_table& avx512_vnni_quant_table();

}  // namespace mlxd::kernels
