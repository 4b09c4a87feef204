// Block-quantized weights in ggml's byte layouts, so GGUF tensors load and save without conversion
// (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md). All multi-byte fields are little-endian; "f16"
// is an IEEE half scale. A row of k values is k / block_size(t) consecutive blocks.
//
//   q8_0  32 values in 34 bytes: f16 d, int8 q[32];                           x[i] = d * q[i]
//   q4_0  32 values in 18 bytes: f16 d, u8 qs[16]; value i < 16 is the low nibble of qs[i], value i + 16
//         its high nibble;                                                     x[i] = d * (nibble - 8)
//   q4_k  256 values in 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128]. Eight sub-blocks of 32 values,
//         each with a 6-bit scale sc[j] and a 6-bit min m[j] packed in scales[] (j < 4: sc = scales[j] & 63,
//         m = scales[j + 4] & 63; j >= 4: the low 4 bits in scales[j + 4] (sc low nibble, m high nibble) and
//         the top 2 bits in bits 6-7 of scales[j - 4] (sc) and scales[j] (m)). Each 64 values use 32 bytes of
//         qs: sub-block 2g in the low nibbles, 2g + 1 in the high nibbles.  x = d * sc[j] * q - dmin * m[j]
//   q6_k  256 values in 210 bytes: u8 ql[128], u8 qh[64], int8 scales[16], f16 d. Each half of 128 values
//         uses 64 bytes of ql and 32 of qh: for l < 32, value l is ql[l] & 15 with bits 0-1 of qh[l] on top,
//         l + 32 is ql[l + 32] & 15 with bits 2-3, l + 64 is ql[l] >> 4 with bits 4-5, l + 96 is ql[l + 32]
//         >> 4 with bits 6-7; each 16 values share one scale.  x = d * scales[i / 16] * (q - 32)
//
// Quantizing follows ggml's reference functions (quantize_row_*_ref, what llama.cpp uses without an
// importance matrix), including their rounding and their search for k-quant scales and mins; the bytes match
// an independent NumPy transcription of them (tests/io/ggml_quants.py). Deterministic, single-threaded per
// row.
#pragma once

#include <cstdint>

#include "mlxd/core/dtype.h"

namespace mlxd {

// Quantizes n values of x (n a multiple of block_size(t)) into n / block_size(t) blocks at `out`. Throws
// std::invalid_argument when t is not a quantized dtype, n is not a whole number of blocks, or a value is not
// finite.
void quantize_blocks(dtype t, const float* x, void* out, int64_t n);
// The n values held by n / block_size(t) blocks at `blocks`, as f32 (exactly d * q etc. in f32 arithmetic, as
// ggml's dequantize_row_*). Same checks as quantize_blocks.
void dequantize_blocks(dtype t, const void* blocks, float* out, int64_t n);

}  // namespace mlxd
