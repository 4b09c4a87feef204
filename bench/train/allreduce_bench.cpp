// Data-parallel gradient summation of the ~15M-parameter Llama of issue 7 (61 MB of f32 gradients in 57
// tensors). Run under `mlxd launch -n N -- allreduce_bench [reps] [bucket_mb]`; rank 0 prints one JSON
// object: the grad_allreducer's time per sum with its algbw and busbw (nccl-tests: busbw = algbw x 2(n-1)/n),
// beside one all_reduce of the same bytes as a single flat buffer (the comm layer's own ring, no bucketing)
// and a memcpy of the same bytes, each timed in the same run (median of `reps`).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "mlxd/comm/registry.h"
#include "mlxd/comm/rendezvous.h"
#include "mlxd/core/random.h"
#include "mlxd/train/grad_allreduce.h"

namespace {

using mlxd::array;
using mlxd::shape_t;

std::vector<shape_t> llama_15m_shapes() {
  const int64_t dim = 288, ffn = 768, vocab = 32000;
  std::vector<shape_t> out{{vocab, dim}};
  for (int l = 0; l < 6; ++l) {
    for (int w = 0; w < 4; ++w) out.push_back({dim, dim});
    out.push_back({ffn, dim});
    out.push_back({ffn, dim});
    out.push_back({dim, ffn});
    out.push_back({dim});
    out.push_back({dim});
  }
  out.push_back({dim});
  return out;
}

template <class F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 10;
    const size_t bucket = (argc > 2 ? std::max(1, std::atoi(argv[2])) : 8) << 20;
    auto o = mlxd::comm::options_from_env();
    if (!o) throw std::runtime_error("run under `mlxd launch -n N`");
    auto g = mlxd::comm::make_group("grpc", *o);
    std::vector<array> grads;
    int64_t elements = 0;
    uint64_t k = 0;
    for (const auto& s : llama_15m_shapes()) {
      grads.push_back(mlxd::random::normal({static_cast<uint64_t>(g->rank()), k++}, s, 0.0f, 1e-3f));
      elements += grads.back().size();
    }
    const double bytes = static_cast<double>(elements) * 4;
    array flat = mlxd::random::normal({9, static_cast<uint64_t>(g->rank())}, {elements}, 0.0f, 1e-3f);
    std::vector<char> src(static_cast<size_t>(bytes), 1), dst(static_cast<size_t>(bytes));
    mlxd::train::grad_allreducer ar(g, bucket);
    ar.sum(grads);  // warm-up: connections, allocator
    g->barrier();
    const double t_bucketed = median_seconds(reps, [&] { ar.sum(grads); });
    g->barrier();
    const double t_flat = median_seconds(reps, [&] { g->all_reduce(flat, mlxd::comm::reduce_op::sum); });
    const double t_memcpy = median_seconds(reps, [&] { std::memcpy(dst.data(), src.data(), src.size()); });
    if (g->rank() != 0) return 0;
    const int n = g->size();
    auto bw = [&](double t) {
      const double alg = bytes / t / 1e9;
      return nlohmann::json{{"seconds", t}, {"algbw_GBps", alg}, {"busbw_GBps", alg * 2 * (n - 1) / n}};
    };
    nlohmann::json j = {{"ranks", n},
                        {"bytes", bytes},
                        {"tensors", grads.size()},
                        {"bucket_bytes", bucket},
                        {"reps", reps},
                        {"grad_allreducer", bw(t_bucketed)},
                        {"flat_all_reduce", bw(t_flat)},
                        {"memcpy", {{"seconds", t_memcpy}, {"GBps", bytes / t_memcpy / 1e9}}},
                        {"ratio_flat", t_flat / t_bucketed}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "allreduce_bench: %s\n", e.what());
    return 1;
  }
}
