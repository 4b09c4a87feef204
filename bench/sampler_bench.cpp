// One sampling step (engine::sampler::sample: bias, penalties, temperature, top-k/top-p/min-p, the draw and
// the chosen token's logprob) over a vocabulary's logits, in millions of logits per second, beside two
// baselines over the same logits in the same loop:
//   argmax_*  the greedy choice alone (one pass over the logits): the floor of any sampling step;
//   sort_*    sorting every token by logit, the textbook start of top-p sampling.
// Logits are normal with a spread of 1 (a flat distribution: the draw walks far, like a random-weight
// model's) or 4 (peaked, like a trained model's).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "mlxd/core/random.h"
#include "mlxd/engine/sampler.h"
#include "paired_timing.h"

namespace {

using mlxd::engine::sampler;
using mlxd::engine::sampling_params;

void bench_sample(benchmark::State& state, int vocab, float spread, sampling_params p) {
  const std::vector<float> logits = mlxd::random::normal({11, 0}, {vocab}, 0.0f, spread).to_vector<float>();
  const std::vector<int32_t> history = {1, 2, 3, 2};
  sampler s(p, vocab);
  const double n = vocab * 1e3;  // millions of logits per second
  std::vector<std::pair<float, int32_t>> order(static_cast<size_t>(vocab));
  mlxd::bench::run_paired(
      state, "Mlogits_per_s", {"sample", n, [&] { benchmark::DoNotOptimize(s.sample(logits, history)); }},
      {{"argmax", n,
        [&] { benchmark::DoNotOptimize(std::max_element(logits.begin(), logits.end()) - logits.begin()); }},
       {"sort", n, [&] {
          for (int i = 0; i < vocab; ++i)
            order[static_cast<size_t>(i)] = {-logits[static_cast<size_t>(i)], i};
          std::sort(order.begin(), order.end());
          benchmark::DoNotOptimize(order.front());
        }}});
}

void register_all() {
  for (const int vocab : {32000, 151936}) {
    for (const float spread : {1.0f, 4.0f}) {
      const std::string shape = std::to_string(vocab) + "/spread" + std::to_string(static_cast<int>(spread));
      sampling_params p;
      p.temperature = 0.0f;  // greedy decode: the choice and its logprob
      benchmark::RegisterBenchmark(("sample/greedy/" + shape).c_str(), bench_sample, vocab, spread, p)
          ->UseRealTime();
      p.temperature = 0.8f;
      p.seed = 1;
      benchmark::RegisterBenchmark(("sample/t0.8/" + shape).c_str(), bench_sample, vocab, spread, p)
          ->UseRealTime();
      p.top_p = 0.9f;
      benchmark::RegisterBenchmark(("sample/top_p0.9/" + shape).c_str(), bench_sample, vocab, spread, p)
          ->UseRealTime();
      p.top_p = 1.0f;
      p.top_k = 40;
      benchmark::RegisterBenchmark(("sample/top_k40/" + shape).c_str(), bench_sample, vocab, spread, p)
          ->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
