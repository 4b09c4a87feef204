// The optimised kernels for the avx2 target (flags set in src/core/CMakeLists.txt).
#define MLXD_KERNEL_NS avx2
#define MLXD_KERNEL_TABLE make_table
#include "simd.inc"

namespace mlxd::kernels {
const table& avx2_table() {
  return avx2::make_table();
}
}  // namespace mlxd::kernels
