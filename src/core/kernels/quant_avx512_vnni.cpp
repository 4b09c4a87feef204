// The quantized kernels for the avx512_vnni target (flags set in src/core/CMakeLists.txt).
#define MLXD_KERNEL_NS avx512_vnni
#define MLXD_KERNEL_TABLE make_quant_table
#include "quant.inc"

namespace mlxd::kernels {
const quant_table& avx512_vnni_quant_table() {
  return avx512_vnni::make_quant_table();
}
}  // namespace mlxd::kernels
