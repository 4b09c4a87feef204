// The optimised kernels for the scalar target (flags set in src/core/CMakeLists.txt).
#define MLXD_KERNEL_NS scalar
#define MLXD_KERNEL_TABLE make_table
#include "simd.inc"

namespace mlxd::kernels {
const table& scalar_table() {
  return scalar::make_table();
}
}  // namespace mlxd::kernels
