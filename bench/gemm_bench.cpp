// f32 GEMM throughput of mlxd::matmul beside cblas_sgemm called directly on the same buffers.
//
// Square sizes multiply a[s, s] by b[s, s]. The Llama shapes are a 1B model's projections for a 512-token
// prompt, with weights stored [out, in] and used transposed as a Linear layer does: matmul(x, transpose(w)).
// The train_lm_head shapes are the three products of a training step's LM head (2048 tokens, dim 288, vocab
// 32000, bench/train): the logits, the hidden states' gradient and the weight's, matmul(transpose(g), h).
// Counters: GFLOPS (mlxd), cblas_GFLOPS, ratio_cblas = mlxd / cblas.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <string>
#include <vector>

#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/core/thread_pool.h"
#include "paired_timing.h"

namespace {

using mlxd::array;
using mlxd::shape_t;

struct gemm_shape {
  std::string name;
  int64_t m, n, k;
  bool weight_transposed;     // b is transpose(w[n, k]) rather than b[k, n]
  bool a_transposed = false;  // a is transpose(x[k, m]) rather than x[m, k]
};

struct gemm_inputs {
  array a;  // [m, k], or [k, m] when a_transposed
  array w;  // [n, k] when weight_transposed, else [k, n]
  array c;  // [m, n], cblas's output
};

void bench_gemm(benchmark::State& state, const gemm_shape& s, int n_threads) {
  mlxd::set_num_threads(n_threads);
  const std::string key = std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) +
                          (s.weight_transposed ? "t" : "n") + (s.a_transposed ? "t" : "n");
  const gemm_inputs& in = mlxd::bench::cached<gemm_inputs>(key, [&] {
    const shape_t w_shape = s.weight_transposed ? shape_t{s.n, s.k} : shape_t{s.k, s.n};
    const shape_t a_shape = s.a_transposed ? shape_t{s.k, s.m} : shape_t{s.m, s.k};
    return gemm_inputs{mlxd::random::uniform({1, 0}, a_shape, -1.0f, 1.0f),
                       mlxd::random::uniform({1, 1}, w_shape, -1.0f, 1.0f), mlxd::zeros({s.m, s.n})};
  });
  const array a = s.a_transposed ? mlxd::transpose(in.a) : in.a;       // [m, k]
  const array b = s.weight_transposed ? mlxd::transpose(in.w) : in.w;  // [k, n]
  const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
  const double flops = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);

  auto cblas = [&] {
    // OpenBLAS's own threads for the baseline only: mlxd keeps it single-threaded (src/core/sgemm.h).
    openblas_set_num_threads(n_threads);
    cblas_sgemm(CblasRowMajor, s.a_transposed ? CblasTrans : CblasNoTrans,
                s.weight_transposed ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, in.a.data<float>(),
                s.a_transposed ? m : k, in.w.data<float>(), s.weight_transposed ? k : n, 0.0f,
                in.c.mutable_data<float>(), n);
    openblas_set_num_threads(1);
    benchmark::ClobberMemory();
  };
  mlxd::bench::run_paired(state, "GFLOPS",
                          {"mlxd", flops, [&] { benchmark::DoNotOptimize(mlxd::matmul(a, b)); }},
                          {{"cblas", flops, cblas}});
}

std::vector<gemm_shape> shapes() {
  std::vector<gemm_shape> out;
  for (int64_t s : {256, 512, 1024, 2048, 4096}) {
    out.push_back({"square_" + std::to_string(s), s, s, s, false});
  }
  // A 1B Llama: dim 2048, 32 heads and 8 kv heads of 64, ffn 8192, vocab 32000; M = 512 prompt tokens.
  out.push_back({"llama_q_o", 512, 2048, 2048, true});
  out.push_back({"llama_k_v", 512, 512, 2048, true});
  out.push_back({"llama_gate_up", 512, 8192, 2048, true});
  out.push_back({"llama_down", 512, 2048, 8192, true});
  out.push_back({"llama_lm_head", 512, 32000, 2048, true});
  out.push_back({"train_lm_head_logits", 2048, 32000, 288, true});
  out.push_back({"train_lm_head_dx", 2048, 288, 32000, false});
  out.push_back({"train_lm_head_dw", 32000, 288, 2048, false, true});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  benchmark::AddCustomContext("mlxd_kernel_level",
                              std::string(mlxd::kernel_level_name(mlxd::active_kernel_level())));
  for (const gemm_shape& s : shapes()) {
    for (int t : {1, 2}) {
      const std::string name = "gemm/" + s.name + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), bench_gemm, s, t)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
