// The block structs of the quantized dtypes (ggml's layouts; see mlxd/core/quantized.h) and the helpers the
// reference and fast code share.
#pragma once

#include <cstdint>
#include <cstring>

#include "mlxd/core/dtype.h"

namespace mlxd::quant {

inline constexpr int qk = 32;     // values per q8_0 / q4_0 block
inline constexpr int qk_k = 256;  // values per k-quant super-block

struct block_q8_0 {
  uint16_t d;  // f16
  int8_t q[qk];
};
struct block_q4_0 {
  uint16_t d;  // f16
  uint8_t qs[qk / 2];
};
struct block_q4_k {
  uint16_t d;     // f16 scale of the sub-block scales
  uint16_t dmin;  // f16 scale of the sub-block mins
  uint8_t scales[12];
  uint8_t qs[qk_k / 2];
};
struct block_q6_k {
  uint8_t ql[qk_k / 2];
  uint8_t qh[qk_k / 4];
  int8_t scales[qk_k / 16];
  uint16_t d;  // f16
};
static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 2);
static_assert(sizeof(block_q4_0) == 18 && alignof(block_q4_0) == 2);
static_assert(sizeof(block_q4_k) == 144 && alignof(block_q4_k) == 2);
static_assert(sizeof(block_q6_k) == 210 && alignof(block_q6_k) == 2);

// The 8-bit activation rows the fast kernels multiply with: blocks of 32 values for q8_0 / q4_0 rows, of 256
// for k-quant rows.
inline int64_t act_block_size(dtype t) {
  return t == dtype::q4_k || t == dtype::q6_k ? qk_k : qk;
}

// Round half to even for |x| < 2^22, as ggml's nearest_int (which the k-quant reference rounding uses).
inline int nearest_int(float x) {
  const float shifted = x + 12582912.0f;  // 1.5 * 2^23
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

// The 6-bit scale and min of sub-block j of a q4_k block.
inline void q4_k_scale_min(int j, const uint8_t* scales, int& sc, int& m) {
  if (j < 4) {
    sc = scales[j] & 63;
    m = scales[j + 4] & 63;
  } else {
    sc = (scales[j + 4] & 0xf) | ((scales[j - 4] >> 6) << 4);
    m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

}  // namespace mlxd::quant
