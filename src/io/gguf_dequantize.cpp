#include "io/gguf_dequantize.h"

#include "mlxd/core/dtype.h"

namespace mlxd::detail {

namespace {

float read_f16(const std::byte* p) {
  return f16_to_f32(static_cast<uint16_t>(static_cast<unsigned>(p[0]) | (static_cast<unsigned>(p[1]) << 8)));
}

}  // namespace

void dequantize_q8_0(const std::byte* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += 34, dst += 32) {
    const float d = read_f16(src);
    for (int j = 0; j < 32; ++j) dst[j] = d * static_cast<float>(static_cast<int8_t>(src[2 + j]));
  }
}

void dequantize_q4_0(const std::byte* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += 18, dst += 32) {
    const float d = read_f16(src);
    for (int j = 0; j < 16; ++j) {
      const auto q = static_cast<unsigned>(src[2 + j]);
      dst[j] = d * static_cast<float>(static_cast<int>(q & 0xfu) - 8);
      dst[j + 16] = d * static_cast<float>(static_cast<int>(q >> 4) - 8);
    }
  }
}

}  // namespace mlxd::detail
