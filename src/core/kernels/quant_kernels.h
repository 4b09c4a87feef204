// The fast quantized matrix-vector kernels, one table per instruction set (quant.inc compiled once per
// target). As ggml does, x is first quantized to 8 bits per row (blocks of 32 values for q8_0/q4_0 weights,
// of 256 for k-quants); a dot product then multiplies integers block by block and applies the block scales in
// f32. Results differ from the exact product of the stored weights with x only by x's 8-bit
// rounding (|error| <= sum |w| * amax(x block) / 254) and f32 rounding. The plain oracle is the reference
// path in ops_quantized.cpp, which dequantizes rows and accumulates in double.
#pragma once

#include <cstdint>

#include "core/quant/blocks.h"

namespace mlxd::kernels {

// One row of k activations quantized to 8 bits: x[i] ~ d[i / block] * q[i] with |q| <= 127, per block of 32
// (q8_0 / q4_0 weights; s[j] = d[j] * the sum of block j's q, which the weights' offsets need) or of 256
// (k-quants; bsums[g] = the sum of q over values 16 g .. 16 g + 15, which their mins and offsets need).
struct act_row {
  const int8_t* q;
  const float* d;
  const float* s;        // blocks of 32
  const int16_t* bsums;  // blocks of 256
};

// out[r * out_stride] = w_row . x[r] for the n_x (1 to max_dot_rows) activation rows x[r]; w_row holds
// n_blocks weight blocks. Each output is computed with the same operations whatever n_x is, so batching rows
// does not change any bit.
using quant_dot_fn = void (*)(const void* w_row, const act_row* x, int n_x, int64_t n_blocks, float* out,
                              int64_t out_stride);
inline constexpr int max_dot_rows = 4;

struct quant_table {
  // Quantizes k floats (a multiple of 32 / 256) into q [k], d [k / 32] and s [k / 32], or q, d [k / 256] and
  // bsums [k / 16]. A block with a non-finite value gets a NaN scale, so its products are NaN as in f32.
  void (*quantize_act32)(const float* x, int64_t k, int8_t* q, float* d, float* s);
  void (*quantize_act256)(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums);
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
