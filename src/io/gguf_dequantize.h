// Reference dequantization of GGUF block-quantized tensor bytes to f32, following ggml's block layouts.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlxd::detail {

// Q8_0: blocks of 32 values, each an f16 scale d and 32 int8 quants q; x = d * q. 34 bytes per block.
void dequantize_q8_0(const std::byte* src, float* dst, int64_t n_blocks);
// Q4_0: blocks of 32 values, each an f16 scale d and 16 bytes; byte j holds value j in its low nibble and
// value j + 16 in its high nibble, both offset by 8; x = d * (nibble - 8). 18 bytes per block.
void dequantize_q4_0(const std::byte* src, float* dst, int64_t n_blocks);

}  // namespace mlxd::detail
