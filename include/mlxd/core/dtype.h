// Element types of mlxd arrays and exact IEEE conversions for the 16-bit floats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mlxd {

// `boolean` is stored as one byte holding 0 or 1; f16/bf16 as their IEEE bit patterns in a uint16_t.
enum class dtype : uint8_t { f32, f16, bf16, i32, i64, u8, boolean, count };
inline constexpr int n_dtypes = static_cast<int>(dtype::count);
static_assert(n_dtypes == 7, "update size_of/name/promote_types when adding a dtype");

// Bytes per element.
size_t size_of(dtype t);
// Short name: "f32", "f16", "bf16", "i32", "i64", "u8", "bool".
std::string_view name(dtype t);
bool is_floating(dtype t);
// NumPy-like promotion: floats win over integers, wider wins; f16 with bf16 gives f32.
dtype promote_types(dtype a, dtype b);

// Round to nearest even; NaN stays NaN (quiet), infinities and signed zeros are preserved, subnormals exact.
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);

}  // namespace mlxd
