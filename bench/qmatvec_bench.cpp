// Quantized matrix products, y = x * transpose(w) with w [n, k] in q8_0, q4_0, q4_k or q6_k
// (quantized_matmul), each beside a baseline measured in the same loop:
//   qmatvec/<type>/<n>x<k>        decode's product (x [1, k]) in GB/s of quantized weights read, against the
//                                 read kernel streaming the same quantized bytes (ratio = fraction of the
//                                 memory-bandwidth bound); also GFLOP_per_s (2 n k per call);
//   qmatvec_vs_f32/<type>/<n>x<k> the same product in GFLOP/s against mlxd's f32 matrix-vector product of the
//                                 same shape (ratio = speed-up over f32 weights);
//   qmatmul/<type>/<m>x<n>x<k>    prefill's product (x [m, k]) in GFLOP/s against mlxd's f32 matmul (OpenBLAS
//                                 sgemm) of the same shape.
#include <benchmark/benchmark.h>

#include <string>

#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/core/read_bandwidth.h"
#include "mlxd/core/thread_pool.h"
#include "paired_timing.h"

namespace mlxd::bench {
namespace {

struct inputs {
  array x;   // [m, k] f32
  array wq;  // [n, k] quantized
  array wf;  // [n, k] f32, the same values before quantization
};

const inputs& inputs_for(int64_t m, int64_t n, int64_t k, dtype t) {
  const std::string key =
      std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + std::string(name(t));
  return cached<inputs>(key, [&] {
    const array wf = random::normal({5, 1}, {n, k}, 0.0f, 0.02f);
    return inputs{random::normal({5, 0}, {m, k}), astype(wf, t), wf};
  });
}

void qmatvec(benchmark::State& state, int64_t n, int64_t k, dtype t) {
  set_num_threads(static_cast<int>(state.range(0)));
  const inputs& in = inputs_for(1, n, k, t);
  const double bytes = static_cast<double>(in.wq.nbytes());
  run_paired(
      state, "GBps", {"mlxd", bytes, [&] { benchmark::DoNotOptimize(quantized_matmul(in.x, in.wq)); }},
      {{"read", bytes, [&] { benchmark::DoNotOptimize(stream_read(in.wq.raw_data(), in.wq.nbytes())); }}});
  state.counters["GFLOP_per_s"] = state.counters["GBps"] * 2.0 * static_cast<double>(n * k) / bytes;
}

void qmatvec_vs_f32(benchmark::State& state, int64_t n, int64_t k, dtype t) {
  set_num_threads(static_cast<int>(state.range(0)));
  const inputs& in = inputs_for(1, n, k, t);
  const array wt = transpose(in.wf);
  const double flops = 2.0 * static_cast<double>(n * k);
  run_paired(state, "GFLOPS",
             {"mlxd", flops, [&] { benchmark::DoNotOptimize(quantized_matmul(in.x, in.wq)); }},
             {{"f32", flops, [&] { benchmark::DoNotOptimize(matmul(in.x, wt)); }}});
}

void qmatmul(benchmark::State& state, int64_t m, int64_t n, int64_t k, dtype t) {
  set_num_threads(static_cast<int>(state.range(0)));
  const inputs& in = inputs_for(m, n, k, t);
  const array wt = transpose(in.wf);
  const double flops = 2.0 * static_cast<double>(m * n * k);
  run_paired(state, "GFLOPS",
             {"mlxd", flops, [&] { benchmark::DoNotOptimize(quantized_matmul(in.x, in.wq)); }},
             {{"f32", flops, [&] { benchmark::DoNotOptimize(matmul(in.x, wt)); }}});
}

void register_all() {
  const dtype types[] = {dtype::q8_0, dtype::q4_0, dtype::q4_k, dtype::q6_k};
  auto add = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  };
  // 4096^2: a 7B model's attention projection; 4.5-8.5 bits per weight puts it at 9-18 MiB, inside the 35.8
  // MiB last-level cache, so 11008x4096 (its MLP, 24-46 MiB) is timed too. The short rows of issue 4's small
  // models, where per-row work rather than reading weights can bound decode: the 15M and 110M models' LM
  // heads (32000 rows of 288 and 768) and the 110M model's MLP down projection (768 rows of 2048).
  for (const dtype t : types) {
    for (const auto& [n, k] :
         {std::pair<int64_t, int64_t>{4096, 4096}, {11008, 4096}, {32000, 288}, {32000, 768}, {768, 2048}}) {
      if (k % block_size(t) != 0) continue;  // k-quants need rows of whole 256-value blocks
      const std::string shape = std::to_string(n) + "x" + std::to_string(k);
      add("qmatvec/" + std::string(name(t)) + "/" + shape,
          [n, k, t](benchmark::State& st) { qmatvec(st, n, k, t); });
      add("qmatvec_vs_f32/" + std::string(name(t)) + "/" + shape,
          [n, k, t](benchmark::State& st) { qmatvec_vs_f32(st, n, k, t); });
    }
    // A 110M model's MLP projection over a 512-token prompt.
    add("qmatmul/" + std::string(name(t)) + "/512x2048x768",
        [t](benchmark::State& st) { qmatmul(st, 512, 2048, 768, t); });
  }
}

}  // namespace
}  // namespace mlxd::bench

int main(int argc, char** argv) {
  mlxd::bench::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("mlxd_kernel_level",
                              std::string(mlxd::kernel_level_name(mlxd::active_kernel_level())));
  benchmark::AddCustomContext("read_kernel", std::string(mlxd::stream_read_kernel()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
