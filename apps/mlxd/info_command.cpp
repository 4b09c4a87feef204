#include <chrono>
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::app {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Multiplies two random n x n matrices with the active kernels and checks them against the reference kernels.
int self_check(int64_t n) {
  const array a = random::normal({1}, {n, n}), b = random::normal({2}, {n, n});
  const auto start = std::chrono::steady_clock::now();
  const array fast = matmul(a, b);
  const double elapsed = seconds_since(start);
  array slow;
  {
    kernel_level_guard reference(kernel_level::reference);
    slow = matmul(a, b);
  }
  const bool ok = allclose(fast, slow, 1e-4, 1e-4);
  std::printf("self-check: %lld x %lld matmul %.1f GFLOP/s, matches the reference kernel: %s\n",
              static_cast<long long>(n), static_cast<long long>(n),
              2.0 * std::pow(static_cast<double>(n), 3) / elapsed * 1e-9, ok ? "yes" : "NO");
  return ok ? 0 : 1;
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "print version, CPU kernels and threads, and run a self-check");
  cmd->callback([] {
    std::printf("mlxd %s\n", MLXD_VERSION);
    std::printf("kernels: %s (best for this CPU: %s)\n",
                std::string(kernel_level_name(active_kernel_level())).c_str(),
                std::string(kernel_level_name(best_kernel_level())).c_str());
    std::printf("threads: %d\n", num_threads());
    if (self_check(256) != 0) throw std::runtime_error("self-check failed");
  });
}

}  // namespace mlxd::app
