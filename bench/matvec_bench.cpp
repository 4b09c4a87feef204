// The decode step's matrix-vector product, y[1, n] = x[1, k] * transpose(w[n, k]), with w in f32, f16 or
// bf16, in GB/s of weights read, beside the read-bandwidth kernel streaming the same weight buffer.
//
// rows4, rows8: four or eight x rows at once (sequences decoding together), in GFLOP/s, beside the same rows
// multiplied one at a time (ratio_alone); each row gets the same bits either way, and the batch reads each
// group of weight rows once for all of them.
//
// Counters: GBps (mlxd), read_GBps, ratio_read = mlxd / read. At one thread the f32 case also times
// cblas_sgemv on the same buffers (cblas_GBps, ratio_cblas); at two threads it is left out because OpenBLAS's
// workers spin after each call and would steal the core that mlxd's pool needs next.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <string>
#include <vector>

#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/core/read_bandwidth.h"
#include "mlxd/core/thread_pool.h"
#include "paired_timing.h"

namespace {

using mlxd::array;
using mlxd::dtype;

struct matvec_inputs {
  array x;  // [1, k] f32
  array w;  // [n, k] in the weight dtype
  array y;  // [n] f32, cblas's output
};

void bench_matvec(benchmark::State& state, int64_t n, int64_t k, dtype t, int n_threads) {
  mlxd::set_num_threads(n_threads);
  const std::string key = std::to_string(n) + "x" + std::to_string(k) + std::string(mlxd::name(t));
  const matvec_inputs& in = mlxd::bench::cached<matvec_inputs>(key, [&] {
    return matvec_inputs{mlxd::random::uniform({2, 0}, {1, k}, -1.0f, 1.0f),
                         mlxd::random::uniform({2, 1}, {n, k}, -1.0f, 1.0f, t), mlxd::zeros({n})};
  });
  const array wt = mlxd::transpose(in.w);  // [k, n], a view
  const double bytes = static_cast<double>(in.w.nbytes());

  std::vector<mlxd::bench::timed_call> baselines{
      {"read", bytes, [&] { benchmark::DoNotOptimize(mlxd::stream_read(in.w.raw_data(), in.w.nbytes())); }}};
  if (t == dtype::f32 && n_threads == 1) {
    baselines.push_back({"cblas", bytes, [&] {
                           cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k),
                                       1.0f, in.w.data<float>(), static_cast<int>(k), in.x.data<float>(), 1,
                                       0.0f, in.y.mutable_data<float>(), 1);
                           benchmark::ClobberMemory();
                         }});
  }
  mlxd::bench::run_paired(
      state, "GBps", {"mlxd", bytes, [&] { benchmark::DoNotOptimize(mlxd::matmul(in.x, wt)); }}, baselines);
}

void bench_rows(benchmark::State& state, int64_t m, int64_t n, int64_t k, dtype t, int n_threads) {
  mlxd::set_num_threads(n_threads);
  const std::string key = "rows/" + std::to_string(n) + "x" + std::to_string(k) + std::string(mlxd::name(t));
  const matvec_inputs& in = mlxd::bench::cached<matvec_inputs>(key, [&] {
    return matvec_inputs{mlxd::random::uniform({3, 0}, {8, k}, -1.0f, 1.0f),
                         mlxd::random::uniform({3, 1}, {n, k}, -1.0f, 1.0f, t), mlxd::zeros({n})};
  });
  const array wt = mlxd::transpose(in.w);
  const array x = mlxd::contiguous(mlxd::slice(in.x, {0, 0}, {m, k}));
  std::vector<array> rows;
  for (int64_t i = 0; i < m; ++i) rows.push_back(mlxd::contiguous(mlxd::slice(in.x, {i, 0}, {i + 1, k})));
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  mlxd::bench::run_paired(state, "GFLOPS",
                          {"mlxd", flops, [&] { benchmark::DoNotOptimize(mlxd::matmul(x, wt)); }},
                          {{"alone", flops, [&] {
                              for (const array& r : rows) benchmark::DoNotOptimize(mlxd::matmul(r, wt));
                            }}});
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("mlxd_kernel_level",
                              std::string(mlxd::kernel_level_name(mlxd::active_kernel_level())));
  benchmark::AddCustomContext("read_kernel", std::string(mlxd::stream_read_kernel()));
  // 1024^2 stays in the last-level cache (35.8 MiB here); 4096^2 f32 (64 MiB) and 8192^2 (256 MiB f32,
  // 128 MiB f16) do not. 4096^2 in f16/bf16 is 32 MiB, about the cache's size: read it as a middle point.
  for (dtype t : {dtype::f32, dtype::f16, dtype::bf16}) {
    for (int64_t s : {1024, 4096, 8192}) {
      for (int threads : {1, 2}) {
        const std::string name = "matvec/" + std::string(mlxd::name(t)) + "/" + std::to_string(s) + "x" +
                                 std::to_string(s) + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), bench_matvec, s, s, t, threads)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  // The 6M serve bench model's width (256, in cache), the 110M pipeline model's (768), and 16384x2048 (128
  // MiB in f32, 64 MiB in f16), which streams from memory as a whole model's decode does.
  for (int64_t m : {4, 8}) {
    for (dtype t : {dtype::f32, dtype::f16}) {
      for (auto [n, k] : {std::pair<int64_t, int64_t>{1024, 256}, {3072, 768}, {16384, 2048}}) {
        for (int threads : {1, 2}) {
          const std::string name = "rows" + std::to_string(m) + "/" + std::string(mlxd::name(t)) + "/" +
                                   std::to_string(n) + "x" + std::to_string(k) +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), bench_rows, m, n, k, t, threads)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
