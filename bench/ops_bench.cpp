// Memory-bound ops on f32 arrays larger than the last-level cache, in GB/s of bytes read plus bytes written,
// at the best kernel level beside the reference level and the read-bandwidth kernel streaming the input.
//
// Counters: GBps (best level), reference_GBps and ratio_reference (the optimised kernels' speed-up),
// read_GBps and ratio_read (how close the op comes to streaming its input once).
#include <benchmark/benchmark.h>

#include <functional>
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
using mlxd::shape_t;

struct op_inputs {
  array x;       // the op's shape, f32
  array y;       // same shape: second operand of binary ops
  array weight;  // [x.shape(-1)]: rms_norm's scale
};

struct op_case {
  std::string name;
  shape_t shape;
  int n_arrays_moved;  // arrays of x's size read or written per call
  std::function<array(const op_inputs&)> run;
};

void bench_op(benchmark::State& state, const op_case& op, int n_threads) {
  mlxd::set_num_threads(n_threads);
  const std::string key = op.name + mlxd::shape_to_string(op.shape);
  const op_inputs& in = mlxd::bench::cached<op_inputs>(key, [&] {
    return op_inputs{mlxd::random::uniform({3, 0}, op.shape, -4.0f, 4.0f),
                     mlxd::random::uniform({3, 1}, op.shape, -4.0f, 4.0f),
                     mlxd::random::uniform({3, 2}, {op.shape.back()}, 0.5f, 1.5f)};
  });
  const double bytes = static_cast<double>(op.n_arrays_moved) * static_cast<double>(in.x.nbytes());
  auto at_level = [&](mlxd::kernel_level level) {
    return [&, level] {
      const mlxd::kernel_level_guard guard(level);
      benchmark::DoNotOptimize(op.run(in));
    };
  };
  state.SetLabel(std::string(mlxd::kernel_level_name(mlxd::best_kernel_level())));
  mlxd::bench::run_paired(state, "GBps", {"best", bytes, at_level(mlxd::best_kernel_level())},
                          {{"reference", bytes, at_level(mlxd::kernel_level::reference)},
                           {"read", static_cast<double>(in.x.nbytes()), [&] {
                              benchmark::DoNotOptimize(mlxd::stream_read(in.x.raw_data(), in.x.nbytes()));
                            }}});
}

std::vector<op_case> cases() {
  const shape_t rows{4096, 4096};      // 64 MiB of f32
  const shape_t heads{128, 2048, 64};  // [batch * n_heads, seq, head_dim]: 64 MiB of f32
  mlxd::rope_options rope_opts;
  rope_opts.base = 500000.0f;
  return {
      {"softmax", rows, 2, [](const op_inputs& in) { return mlxd::softmax(in.x, -1); }},
      {"rms_norm", rows, 2, [](const op_inputs& in) { return mlxd::rms_norm(in.x, in.weight, 1e-5f); }},
      {"rope", heads, 2, [rope_opts](const op_inputs& in) { return mlxd::rope(in.x, rope_opts); }},
      {"add", rows, 3, [](const op_inputs& in) { return mlxd::add(in.x, in.y); }},
      {"mul", rows, 3, [](const op_inputs& in) { return mlxd::multiply(in.x, in.y); }},
      {"exp", rows, 2, [](const op_inputs& in) { return mlxd::exp(in.x); }},
      {"silu", rows, 2, [](const op_inputs& in) { return mlxd::silu(in.x); }},
  };
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("read_kernel", std::string(mlxd::stream_read_kernel()));
  for (const op_case& op : cases()) {
    for (int threads : {1, 2}) {
      const std::string name =
          "ops/" + op.name + "/" + mlxd::shape_to_string(op.shape) + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), bench_op, op, threads)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
