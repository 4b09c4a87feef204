#include "mlxd/core/dtype.h"

#include <bit>
#include <stdexcept>
#include <string>

namespace mlxd {

size_t size_of(dtype t) {
  switch (t) {
    case dtype::f32:
      return 4;
    case dtype::f16:
      return 2;
    case dtype::bf16:
      return 2;
    case dtype::i32:
      return 4;
    case dtype::i64:
      return 8;
    case dtype::u8:
      return 1;
    case dtype::boolean:
      return 1;
    case dtype::q8_0:
    case dtype::q4_0:
    case dtype::q4_k:
    case dtype::q6_k:
      throw std::invalid_argument("[size_of] " + std::string(name(t)) +
                                  " is block-quantized: its elements have no byte size of their own");
    case dtype::count:
      break;
  }
  throw std::invalid_argument("[size_of] invalid dtype " + std::to_string(static_cast<int>(t)));
}

std::string_view name(dtype t) {
  switch (t) {
    case dtype::f32:
      return "f32";
    case dtype::f16:
      return "f16";
    case dtype::bf16:
      return "bf16";
    case dtype::i32:
      return "i32";
    case dtype::i64:
      return "i64";
    case dtype::u8:
      return "u8";
    case dtype::boolean:
      return "bool";
    case dtype::q8_0:
      return "q8_0";
    case dtype::q4_0:
      return "q4_0";
    case dtype::q4_k:
      return "q4_k";
    case dtype::q6_k:
      return "q6_k";
    case dtype::count:
      break;
  }
  return "invalid";
}

bool is_floating(dtype t) {
  return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16;
}

bool is_quantized(dtype t) {
  return t == dtype::q8_0 || t == dtype::q4_0 || t == dtype::q4_k || t == dtype::q6_k;
}

int64_t block_size(dtype t) {
  if (t == dtype::q8_0 || t == dtype::q4_0) return 32;
  if (t == dtype::q4_k || t == dtype::q6_k) return 256;
  size_of(t);  // validates t
  return 1;
}

size_t block_bytes(dtype t) {
  switch (t) {
    case dtype::q8_0:
      return 34;
    case dtype::q4_0:
      return 18;
    case dtype::q4_k:
      return 144;
    case dtype::q6_k:
      return 210;
    default:
      return size_of(t);
  }
}

dtype promote_types(dtype a, dtype b) {
  if (is_quantized(a) || is_quantized(b)) {
    throw std::invalid_argument("[promote_types] " + std::string(name(is_quantized(a) ? a : b)) +
                                " is block-quantized; convert it with astype first");
  }
  if (a == b) return a;
  if (is_floating(a) || is_floating(b)) {
    if (!is_floating(a)) return b;
    if (!is_floating(b)) return a;
    return dtype::f32;  // two different floats: f32 holds both exactly
  }
  if (a == dtype::boolean) return b;
  if (b == dtype::boolean) return a;
  if (a == dtype::i64 || b == dtype::i64) return dtype::i64;
  return dtype::i32;  // i32 with u8
}

uint16_t f32_to_f16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) {  // inf or NaN; NaN keeps its top payload bits and is made quiet
    const uint32_t nan_bits = x > 0x7f800000u ? (0x200u | ((x >> 13) & 0x3ffu)) : 0u;
    return static_cast<uint16_t>(sign | 0x7c00u | nan_bits);
  }
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (x < 0x38800000u) {
    // Below 2^-14 the result is subnormal: adding 0.5 puts its ulp at 2^-24 and the FPU rounds to even.
    const float magic = 0.5f;
    const float v = std::bit_cast<float>(x) + magic;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(v) - std::bit_cast<uint32_t>(magic)));
  }
  const uint32_t odd = (x >> 13) & 1u;
  x += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + odd;
  return static_cast<uint16_t>(sign | (x >> 13));
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;  // exact: subnormal or zero
    return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t f32_to_bf16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

}  // namespace mlxd
