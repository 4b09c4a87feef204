#include "paired_timing.h"

#include <algorithm>
#include <chrono>

namespace mlxd::bench {
namespace {

double median(std::vector<double> v) {
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (v.size() % 2) return *mid;
  return (*mid + *std::max_element(v.begin(), mid)) / 2;
}

}  // namespace

void run_paired(benchmark::State& state, const char* unit, const timed_call& subject,
                const std::vector<timed_call>& baselines) {
  std::vector<const timed_call*> calls{&subject};
  for (const timed_call& b : baselines) calls.push_back(&b);
  for (const timed_call* c : calls) c->fn();

  // Each iteration runs the calls forward then backward (A B B A), so every call runs first and last equally
  // often even in a one-iteration run, and drift within an iteration hits all of them alike.
  std::vector<std::vector<double>> seconds(calls.size());  // [call][iteration]: both runs of the call
  auto time_call = [&](size_t c) {
    const auto t0 = std::chrono::steady_clock::now();
    calls[c]->fn();
    seconds[c].back() += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (auto _ : state) {
    for (auto& s : seconds) s.push_back(0.0);
    for (size_t c = 0; c < calls.size(); ++c) time_call(c);
    for (size_t c = calls.size(); c-- > 0;) time_call(c);
  }

  // Medians over iterations, so a burst of load from another process moves neither the figures nor the
  // ratios.
  auto rate = [&](size_t c) { return 2.0 * calls[c]->work / median(seconds[c]) * 1e-9; };
  state.counters[unit] = rate(0);
  for (size_t c = 1; c < calls.size(); ++c) {
    std::vector<double> ratios(seconds[0].size());
    for (size_t i = 0; i < ratios.size(); ++i) {
      ratios[i] = (calls[0]->work / seconds[0][i]) / (calls[c]->work / seconds[c][i]);
    }
    state.counters[calls[c]->name + "_" + unit] = rate(c);
    state.counters["ratio_" + calls[c]->name] = median(ratios);
  }
}

}  // namespace mlxd::bench
