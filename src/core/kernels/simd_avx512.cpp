// The optimised kernels for the avx512 target (flags set in src/core/CMakeLists.txt).
#define MLXD_KERNEL_NS avx512
#define MLXD_KERNEL_TABLE make_table
#include "simd.inc"

namespace mlxd::kernels {
const table& avx512_table() {
  return avx512::make_table();
}
}  // namespace mlxd::kernels
