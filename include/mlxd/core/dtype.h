// Element types of mlxd arrays and exact IEEE conversions for the 16-bit floats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mlxd {

// `boolean` is stored as one byte holding 0 or 1; f16/bf16 as their IEEE bit patterns in a uint16_t.
// q8_0, q4_0, q4_k and q6_k are block-quantized with ggml's byte layouts (see mlxd/core/quantized.h): the
// elements of each row are stored in blocks of block_size(t) values taking block_bytes(t) bytes each.
enum class dtype : uint8_t { f32, f16, bf16, i32, i64, u8, boolean, q8_0, q4_0, q4_k, q6_k, count };
inline constexpr int n_dtypes = static_cast<int>(dtype::count);
static_assert(n_dtypes == 11, "update size_of/name/block_size/block_bytes/promote_types when adding a dtype");

// Bytes per element. Throws std::invalid_argument for a block-quantized dtype, whose elements have no size of
// their own (use block_bytes).
size_t size_of(dtype t);
// Short name: "f32", "f16", "bf16", "i32", "i64", "u8", "bool", "q8_0", "q4_0", "q4_k", "q6_k".
std::string_view name(dtype t);
bool is_floating(dtype t);  // f32, f16, bf16 (not the quantized types)
bool is_quantized(dtype t);
// Elements per block: 32 for q8_0 and q4_0, 256 for q4_k and q6_k, 1 for the plain dtypes.
int64_t block_size(dtype t);
// Bytes per block: 34, 18, 144, 210 for q8_0, q4_0, q4_k, q6_k; size_of(t) for the plain dtypes.
size_t block_bytes(dtype t);
// NumPy-like promotion: floats win over integers, wider wins; f16 with bf16 gives f32. Throws
// std::invalid_argument for a quantized dtype (convert with astype first).
dtype promote_types(dtype a, dtype b);

// Round to nearest even; NaN stays NaN (quiet), infinities and signed zeros are preserved, subnormals exact.
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);

}  // namespace mlxd
