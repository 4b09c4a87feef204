// The quantized kernels for the avx512 target (flags set in src/core/CMakeLists.txt).
#define MLXD_KERNEL_NS avx512
#define MLXD_KERNEL_TABLE make_quant_table
#include "quant.inc"

namespace mlxd::kernels {
const quant_table& avx512_quant_table() {
  return avx512::make_quant_table();
}
}  // namespace mlxd::kernels
