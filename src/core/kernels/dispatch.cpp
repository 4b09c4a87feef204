#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels.h"
#include "quant_kernels.h"

namespace mlxd {
namespace {

bool cpu_runs(kernel_level level) {
  switch (level) {
    case kernel_level::avx512_vnni:
      return __builtin_cpu_supports("avx512vnni") && cpu_runs(kernel_level::avx512);
    case kernel_level::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             cpu_runs(kernel_level::avx2);
    case kernel_level::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    default:
      return level < kernel_level::count;
  }
}

kernel_level initial_level() {
  if (const char* env = std::getenv("MLXD_KERNELS")) {
    for (int i = 0; i < static_cast<int>(kernel_level::count); ++i) {
      const auto level = static_cast<kernel_level>(i);
      if (kernel_level_name(level) == env && cpu_runs(level)) return level;
    }
  }
  return best_kernel_level();
}

std::atomic<kernel_level>& level_slot() {
  static std::atomic<kernel_level> level{initial_level()};
  return level;
}

}  // namespace

kernel_level best_kernel_level() {
  if (cpu_runs(kernel_level::avx512_vnni)) return kernel_level::avx512_vnni;
  if (cpu_runs(kernel_level::avx512)) return kernel_level::avx512;
  if (cpu_runs(kernel_level::avx2)) return kernel_level::avx2;
  return kernel_level::scalar;
}

kernel_level active_kernel_level() {
  return level_slot().load(std::memory_order_relaxed);
}

void set_kernel_level(kernel_level level) {
  if (!cpu_runs(level)) {
    throw std::invalid_argument("[set_kernel_level] this CPU cannot run " +
                                std::string(kernel_level_name(level)));
  }
  level_slot().store(level);
}

std::string_view kernel_level_name(kernel_level level) {
  switch (level) {
    case kernel_level::reference:
      return "reference";
    case kernel_level::scalar:
      return "scalar";
    case kernel_level::avx2:
      return "avx2";
    case kernel_level::avx512:
      return "avx512";
    case kernel_level::avx512_vnni:
      return "avx512vnni";
    case kernel_level::count:
      break;
  }
  return "invalid";
}

namespace kernels {

const table* active() {
  switch (active_kernel_level()) {
    case kernel_level::scalar:
      return &scalar_table();
    case kernel_level::avx2:
      return &avx2_table();
    case kernel_level::avx512:
    case kernel_level::avx512_vnni:
      return &avx512_table();
    default:
      return nullptr;
  }
}

const quant_table* active_quant() {
  switch (active_kernel_level()) {
    case kernel_level::scalar:
      return &scalar_quant_table();
    case kernel_level::avx2:
      return &avx2_quant_table();
    case kernel_level::avx512:
      return &avx512_quant_table();
    case kernel_level::avx512_vnni:
      return &avx512_vnni_quant_table();
    default:
      return nullptr;
  }
}

}  // namespace kernels
}  // namespace mlxd
