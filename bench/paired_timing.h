// Times a subject beside its baselines inside one benchmark loop.
//
// This machine is shared and noisy (two-thread figures move 15-40% between runs), so a figure is only
// compared with a baseline measured in the same loop: every iteration runs each callable twice, in the order
// subject, baselines, then the reverse, and the reported counters are medians over iterations:
//   <unit>                 the subject's throughput (work units * 1e-9 per second),
//   <baseline>_<unit>      each baseline's throughput,
//   ratio_<baseline>       subject throughput / baseline throughput, the median of per-iteration ratios.
// The benchmark's own time columns cover a whole iteration (all callables); read the counters instead.
#pragma once

#include <benchmark/benchmark.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlxd::bench {

struct timed_call {
  std::string name;  // counter prefix for a baseline; ignored for the subject
  double work;       // work units per call: flops or bytes
  std::function<void()> fn;
};

// Runs each callable once untimed (first-touch of outputs, thread start-up), then the timed loop, then sets
// the counters described above. `unit` is the counter name of the subject, e.g. "GFLOPS" or "GBps".
void run_paired(benchmark::State& state, const char* unit, const timed_call& subject,
                const std::vector<timed_call>& baselines);

// Keeps the most recent value built for `key`. The runner calls a benchmark several times while it sizes the
// iteration count, and large inputs are slow to build; holding one at a time bounds the memory.
template <class T, class Make>
const T& cached(const std::string& key, Make make) {
  static std::string held_key;
  static std::optional<T> held;
  if (!held || held_key != key) {
    held.reset();
    held.emplace(make());
    held_key = key;
  }
  return *held;
}

}  // namespace mlxd::bench
