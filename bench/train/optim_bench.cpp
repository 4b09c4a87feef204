// One AdamW step over the parameters of the ~15M-parameter Llama of issue 7 (dim 288, 6 layers, ffn 768,
// vocab 32000, head tied to the embedding: 15.2M), in GB/s of optimizer traffic: per element it reads the
// parameter, gradient and two moments and writes the parameter and both moments, 28 bytes.
//
// Counters: GBps (the AdamW step), memcpy_GBps and ratio_memcpy (a memcpy moving the same 28 bytes per
// element, 14 read and 14 written, split over the same threads), read_GBps and ratio_read (the read kernel
// over 28 bytes per element).
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "mlxd/core/random.h"
#include "mlxd/core/read_bandwidth.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/train/adam.h"
#include "paired_timing.h"

namespace {

using mlxd::array;
using mlxd::shape_t;

std::vector<std::pair<std::string, shape_t>> llama_15m() {
  const int64_t dim = 288, ffn = 768, vocab = 32000;
  std::vector<std::pair<std::string, shape_t>> out{{"embed.weight", {vocab, dim}}};
  for (int l = 0; l < 6; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (const char* w : {"q", "k", "v", "o"}) out.push_back({p + w + ".weight", {dim, dim}});
    for (const char* w : {"gate", "up"}) out.push_back({p + w + ".weight", {ffn, dim}});
    out.push_back({p + "down.weight", {dim, ffn}});
    out.push_back({p + "attn_norm.weight", {dim}});
    out.push_back({p + "ffn_norm.weight", {dim}});
  }
  out.push_back({"norm.weight", {dim}});
  return out;
}

struct setup {
  std::vector<std::string> names;
  std::vector<array> params, grads;
  std::unique_ptr<mlxd::train::adam> opt;
  int64_t elements = 0;
  std::vector<char> src, dst;  // the memcpy baseline's buffers, 14 bytes per element each
};

void bench_adamw(benchmark::State& state) {
  const int n_threads = static_cast<int>(state.range(0));
  mlxd::set_num_threads(n_threads);
  setup& s = const_cast<setup&>(mlxd::bench::cached<setup>("llama15m", [] {
    setup b;
    uint64_t k = 0;
    for (const auto& [name, shape] : llama_15m()) {
      b.names.push_back(name);
      b.params.push_back(mlxd::random::normal({1, k}, shape, 0.0f, 0.02f));
      b.grads.push_back(mlxd::random::normal({2, k++}, shape, 0.0f, 1e-3f));
      b.elements += b.params.back().size();
    }
    b.opt = std::make_unique<mlxd::train::adam>(b.names, b.params,
                                                mlxd::train::adam_options{.weight_decay = 0.1}, true,
                                                std::vector<mlxd::train::param_group>{{"*norm*", 1.0, 0.0}});
    b.src.assign(static_cast<size_t>(b.elements) * 14, 1);
    b.dst.assign(b.src.size(), 0);
    return b;
  }));
  const double bytes = 28.0 * static_cast<double>(s.elements);
  state.SetLabel(std::to_string(s.elements) + " params");
  mlxd::bench::run_paired(
      state, "GBps", {"adamw", bytes, [&] { s.opt->step(s.params, s.grads, 1e-4); }},
      {{"memcpy", bytes,
        [&] {
          const int64_t chunk = int64_t{1} << 20;
          mlxd::parallel_for(static_cast<int64_t>(s.src.size()), chunk, [&](int64_t begin, int64_t end) {
            std::memcpy(s.dst.data() + begin, s.src.data() + begin, static_cast<size_t>(end - begin));
          });
          benchmark::ClobberMemory();
        }},
       {"read", bytes, [&] {
          // Reads the source twice: 28 bytes per element, like the step's traffic.
          benchmark::DoNotOptimize(mlxd::stream_read(s.src.data(), s.src.size()));
          benchmark::DoNotOptimize(mlxd::stream_read(s.dst.data(), s.dst.size()));
        }}});
}

BENCHMARK(bench_adamw)->Name("optim/adamw_llama15m")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
