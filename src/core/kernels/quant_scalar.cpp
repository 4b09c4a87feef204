// The quantized kernels for the scalar target (flags set in src/core/CMakeLists.txt).
#define MLXD_KERNEL_NS scalar
#define MLXD_KERNEL_TABLE make_quant_table
#include "quant.inc"

namespace mlxd::kernels {
const quant_table& scalar_quant_table() {
  return scalar::make_quant_table();
}
}  // namespace mlxd::kernels
