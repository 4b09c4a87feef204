// Single-node decode and prefill of Llama-architecture models with seeded random weights (weights do not
// change speed), beside the baselines that bound them, measured in the same loop:
//   decode: weight bytes read per token / time, against the read kernel streaming the same weights
//           (ratio = fraction of the memory-bandwidth bound reached);
//   decode_vs_f32: tokens/s of a block-quantized model against the same model in f32 (ratio = speed-up);
//   kv_f16_vs_f32: decode tokens/s at context 896 with an f16 KV cache against an f32 one on the same f32
//           model (ratio = speed of the f16 cache, which halves the cache's bytes);
//   attention896: one layer's decode attention (one token) at context 896: cached_attention over an f32
//           or f16 cache, against the matmul, mask and softmax ops that decode ran before, on the f32
//           cache (ratio = speed-up; calls_per_s counts calls);
//   prefill: model GFLOP/s of a 512-token prompt as generation runs it (forward_last: the layers on every
//           token, the LM head on the last, as llama-bench's pp512), against cblas_sgemm on the
//           [512, hidden] x [hidden, ffn] product of the same model.
// Quantized models quantize every matrix whose rows are whole blocks of the type (as `mlxd quantize`, which
// falls back to q8_0 for the 15M model's 288-value rows under the k-quants); norms stay f32.
#include <cblas.h>

#include <cmath>
#include <memory>
#include <vector>

#include "mlxd/core/cached_attention.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/core/read_bandwidth.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/models/llama.h"
#include "paired_timing.h"

namespace mlxd::bench {
namespace {

struct model_size {
  const char* name;
  int hidden, layers, heads, kv_heads, ffn, vocab;
};

const model_size sizes[] = {{"15M", 288, 6, 6, 6, 768, 32000}, {"110M", 768, 12, 12, 12, 2048, 32000}};

models::llama_config config_of(const model_size& s) {
  models::llama_config c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.ffn;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.max_position_embeddings = 1024;
  return c;
}

struct loaded {
  models::llama_model model;
  std::vector<array> streamed;  // every weight a decode step reads in full (all but the embedding table)
  double streamed_bytes = 0;
  double matmul_params = 0;
  double head_params = 0;  // the LM head's share of matmul_params
};

// The dtype a weight gets in a model of type t.
dtype weight_type(const array& v, dtype t) {
  if (!is_quantized(t)) return t;
  if (v.ndim() != 2) return dtype::f32;
  return v.shape(1) % block_size(t) == 0 ? t : dtype::q8_0;
}

loaded build(const model_size& s, dtype t) {
  const models::llama_config c = config_of(s);
  std::map<std::string, array> w = models::init_llama_weights(c, 1);
  for (auto& [k, v] : w) v = astype(v, weight_type(v, t));
  loaded out{models::llama_model(c, w), {}, 0, 0, 0};
  for (const auto& [k, v] : w) {
    if (k == "model.embed_tokens.weight") continue;
    out.streamed.push_back(v);
    out.streamed_bytes += static_cast<double>(v.nbytes());
    if (v.ndim() == 2) out.matmul_params += static_cast<double>(v.size());
    if (k == "lm_head.weight") out.head_params = static_cast<double>(v.size());
  }
  return out;
}

void decode(benchmark::State& state, const model_size& s, dtype t) {
  set_num_threads(static_cast<int>(state.range(0)));
  const loaded& m = cached<loaded>(std::string(s.name) + std::string(name(t)), [&] { return build(s, t); });
  models::kv_cache cache = m.model.make_cache(256);
  std::vector<int32_t> prompt(64);
  for (int i = 0; i < 64; ++i) prompt[i] = (i * 37) % s.vocab;
  m.model.forward(prompt, cache);
  run_paired(state, "GBps",
             {"decode", m.streamed_bytes,
              [&] {
                m.model.forward({7}, cache);
                cache.truncate(64);  // every step decodes at context 64
              }},
             {{"read", m.streamed_bytes, [&] {
                 uint64_t sink = 0;
                 for (const array& a : m.streamed) sink += stream_read(a.raw_data(), a.nbytes());
                 benchmark::DoNotOptimize(sink);
               }}});
  state.counters["tokens_per_s"] = state.counters["GBps"] * 1e9 / m.streamed_bytes;
}

// Both models of one size, for the comparison in one loop.
struct pair_of_models {
  loaded quantized, f32;
};

void decode_vs_f32(benchmark::State& state, const model_size& s, dtype t) {
  set_num_threads(static_cast<int>(state.range(0)));
  const pair_of_models& m = cached<pair_of_models>(std::string(s.name) + std::string(name(t)) + "+f32", [&] {
    return pair_of_models{build(s, t), build(s, dtype::f32)};
  });
  std::vector<int32_t> prompt(64);
  for (int i = 0; i < 64; ++i) prompt[i] = (i * 37) % s.vocab;
  auto step = [&](const loaded& l) {
    auto cache = std::make_shared<models::kv_cache>(l.model.make_cache(256));
    l.model.forward(prompt, *cache);
    return [&l, cache] {
      l.model.forward({7}, *cache);
      cache->truncate(64);
    };
  };
  // Work 1e9 per call makes the counters tokens per second.
  run_paired(state, "tokens_per_s", {"decode", 1e9, step(m.quantized)}, {{"f32", 1e9, step(m.f32)}});
}

void kv_f16_vs_f32(benchmark::State& state, const model_size& s) {
  set_num_threads(static_cast<int>(state.range(0)));
  const loaded& m = cached<loaded>(std::string(s.name) + "f32", [&] { return build(s, dtype::f32); });
  static constexpr int context = 896;
  std::vector<int32_t> prompt(context);
  for (int i = 0; i < context; ++i) prompt[i] = (i * 37) % s.vocab;
  auto step = [&](dtype kv) {
    auto cache = std::make_shared<models::kv_cache>(m.model.make_cache(context + 8, kv));
    m.model.forward(prompt, *cache);
    return [&m, cache] {
      m.model.forward({7}, *cache);
      cache->truncate(context);
    };
  };
  run_paired(state, "tokens_per_s", {"f16_kv", 1e9, step(dtype::f16)}, {{"f32_kv", 1e9, step(dtype::f32)}});
}

void attention896(benchmark::State& state, const model_size& s, dtype kv) {
  set_num_threads(static_cast<int>(state.range(0)));
  static constexpr int64_t context = 896;
  const int64_t dim = s.hidden / s.heads, group = s.heads / s.kv_heads;
  const array q = random::normal({4}, {s.kv_heads, group, dim});
  const array k32 = random::normal({5}, {s.kv_heads, context, dim});
  const array v32 = random::normal({6}, {s.kv_heads, context, dim});
  const array k = astype(k32, kv), v = astype(v32, kv), mask = zeros({1, context});
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  run_paired(state, "calls_per_s",
             {"direct", 1e9, [&] { benchmark::DoNotOptimize(cached_attention(q, k, v, group, scale)); }},
             {{"matmul", 1e9, [&] {
                 array scores = multiply(matmul(q, swapaxes(k32, 1, 2)), array(scale));
                 scores = add(reshape(scores, {s.kv_heads, group, 1, context}), mask);
                 const array probs = reshape(softmax(scores, -1), {s.kv_heads, group, context});
                 benchmark::DoNotOptimize(matmul(probs, v32));
               }}});
}

void prefill(benchmark::State& state, const model_size& s, dtype t) {
  const int threads = static_cast<int>(state.range(0));
  set_num_threads(threads);
  const loaded& m = cached<loaded>(std::string(s.name) + std::string(name(t)), [&] { return build(s, t); });
  std::vector<int32_t> prompt(512);
  for (int i = 0; i < 512; ++i) prompt[i] = (i * 37) % s.vocab;
  const array x = random::normal({2}, {512, s.hidden}), w = random::normal({3}, {s.ffn, s.hidden});
  array y = zeros({512, s.ffn});
  const double flops = 2.0 * ((m.matmul_params - m.head_params) * 512 + m.head_params);
  run_paired(state, "GFLOPS",
             {"prefill", flops,
              [&] {
                models::kv_cache cache = m.model.make_cache(512);
                m.model.forward_last(prompt, cache);
              }},
             {{"cblas", 2.0 * 512 * s.hidden * s.ffn, [&] {
                 openblas_set_num_threads(threads);
                 cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 512, s.ffn, s.hidden, 1.0f,
                             x.data<float>(), s.hidden, w.data<float>(), s.hidden, 0.0f,
                             y.mutable_data<float>(), s.ffn);
                 openblas_set_num_threads(1);  // mlxd's own products keep OpenBLAS single-threaded
               }}});
  state.counters["tokens_per_s"] = state.counters["GFLOPS"] * 1e9 * 512 / flops;
}

void register_all() {
  auto add = [](const std::string& bench_name, auto fn) {
    benchmark::RegisterBenchmark(bench_name.c_str(), fn)
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  };
  const dtype quantized[] = {dtype::q8_0, dtype::q4_0, dtype::q4_k, dtype::q6_k};
  for (const model_size& s : sizes) {
    const std::string size = s.name;
    for (dtype t :
         {dtype::f32, dtype::f16, dtype::bf16, dtype::q8_0, dtype::q4_0, dtype::q4_k, dtype::q6_k}) {
      add("decode/" + size + "/" + std::string(name(t)), [s, t](benchmark::State& st) { decode(st, s, t); });
    }
    for (dtype t : quantized) {
      add("decode_vs_f32/" + size + "/" + std::string(name(t)),
          [s, t](benchmark::State& st) { decode_vs_f32(st, s, t); });
    }
    add("kv_f16_vs_f32/" + size, [s](benchmark::State& st) { kv_f16_vs_f32(st, s); });
    for (dtype kv : {dtype::f32, dtype::f16}) {
      add("attention896/" + size + "/" + std::string(name(kv)),
          [s, kv](benchmark::State& st) { attention896(st, s, kv); });
    }
    for (dtype t : {dtype::f32, dtype::f16, dtype::q8_0, dtype::q4_0, dtype::q4_k, dtype::q6_k}) {
      add("prefill512/" + size + "/" + std::string(name(t)),
          [s, t](benchmark::State& st) { prefill(st, s, t); });
    }
  }
}

}  // namespace
}  // namespace mlxd::bench

int main(int argc, char** argv) {
  mlxd::bench::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
