// The quantized kernels for the avx2 target (flags set in src/core/CMakeLists.txt).
#define MLXD_KERNEL_NS avx2
#define MLXD_KERNEL_TABLE make_quant_table
#include "quant.inc"

namespace mlxd::kernels {
const quant_table& avx2_quant_table() {
  return avx2::make_quant_table();
}
}  // namespace mlxd::kernels
