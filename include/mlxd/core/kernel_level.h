// Which CPU kernels ops run. `reference` runs the plain, obviously-correct loops that tests use as the
// oracle; the others run the optimised kernels compiled for that instruction set. The best level the CPU
// supports is chosen at start-up (MLXD_KERNELS=reference|scalar|avx2|avx512|avx512vnni overrides it), so one
// binary runs on any x86-64. avx512vnni differs from avx512 only in the quantized matmul kernels, which use
// the VNNI dot-product instructions.
#pragma once

#include <string_view>

namespace mlxd {

enum class kernel_level { reference, scalar, avx2, avx512, avx512_vnni, count };

kernel_level active_kernel_level();
kernel_level best_kernel_level();  // the fastest level this CPU runs
// Throws std::invalid_argument for a level the CPU cannot run.
void set_kernel_level(kernel_level level);
std::string_view kernel_level_name(kernel_level level);

// Sets a level for the lifetime of the guard (tests compare levels).
class kernel_level_guard {
 public:
  explicit kernel_level_guard(kernel_level level) : saved_(active_kernel_level()) { set_kernel_level(level); }
  ~kernel_level_guard() { set_kernel_level(saved_); }
  kernel_level_guard(const kernel_level_guard&) = delete;
  kernel_level_guard& operator=(const kernel_level_guard&) = delete;

 private:
  kernel_level saved_;
};

}  // namespace mlxd
