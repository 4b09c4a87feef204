// `mlxd bench model`: llama-bench's pp (prefill) and tg (decode) figures for one model on this node, beside
// the read bandwidth measured in the same run, which bounds decode: weight bytes per token / bandwidth.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "commands.h"
#include "mlxd/core/read_bandwidth.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/models/default_model.h"
#include "mlxd/models/llama.h"

namespace mlxd::app {
namespace {

using clock_type = std::chrono::steady_clock;

struct model_bench_args {
  std::string model;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  int repetitions = 3;
  uint64_t seed = 1;
};

struct figures {
  double best = 0, median = 0;  // per second
};

// Best and median of `reps` runs of `f`, each measured as `amount` / seconds.
template <class F>
figures measure(int reps, double amount, F&& f) {
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const auto start = clock_type::now();
    f();
    rates.push_back(amount / std::chrono::duration<double>(clock_type::now() - start).count());
  }
  std::sort(rates.begin(), rates.end());
  return {rates.back(), rates[rates.size() / 2]};
}

// In MB of 10^6 bytes, as the weights and the KV cache are reported beside it.
double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0 / 1e6;  // ru_maxrss is in KiB on Linux
}

nlohmann::json run(const model_bench_args& a) {
  const models::llama_model m = models::load_llama(a.model);
  const auto& c = m.config();
  if (a.prompt_tokens > c.max_position_embeddings || a.gen_tokens + 1 > c.max_position_embeddings)
    throw std::invalid_argument("-p " + std::to_string(a.prompt_tokens) + " / -n " +
                                std::to_string(a.gen_tokens) + " exceed the context of " +
                                std::to_string(c.max_position_embeddings));
  std::mt19937 rng(static_cast<uint32_t>(a.seed));
  std::uniform_int_distribution<int32_t> token(0, c.vocab_size - 1);
  std::vector<int32_t> prompt(a.prompt_tokens);
  for (int32_t& t : prompt) t = token(rng);

  const figures pp = measure(a.repetitions, a.prompt_tokens, [&] {
    models::kv_cache cache = m.make_cache(a.prompt_tokens);
    m.forward_last(prompt, cache);
  });
  const figures tg = measure(a.repetitions, a.gen_tokens, [&] {
    models::kv_cache cache = m.make_cache(a.gen_tokens + 1);
    m.forward({prompt[0]}, cache);
    for (int i = 0; i < a.gen_tokens; ++i) m.forward({prompt[(i + 1) % prompt.size()]}, cache);
  });

  const double peak_mb = peak_rss_mb();  // before the baseline's buffer exists
  // The baseline: streaming as many bytes as a decode step reads, from memory this process owns.
  const uint64_t bytes = m.decode_weight_bytes();
  std::vector<uint8_t> buffer(bytes);
  std::memset(buffer.data(), 1, buffer.size());
  volatile uint64_t sink = 0;  // keeps the reads from being optimised away
  const figures read = measure(std::max(3, a.repetitions), static_cast<double>(bytes),
                               [&] { sink = sink + stream_read(buffer.data(), buffer.size()); });
  const double bound = read.best / static_cast<double>(bytes);  // tokens/s if decode only streamed weights
  const double kv_bytes = 2.0 * c.n_layers * c.n_kv_heads * c.head_dim * sizeof(float) *
                          std::max(a.prompt_tokens, a.gen_tokens + 1);
  return {
      {"model", a.model},
      {"threads", num_threads()},
      {"read_kernel", stream_read_kernel()},
      {"decode_weight_mb", static_cast<double>(bytes) / 1e6},
      {"read_gb_s", read.best / 1e9},
      {"pp", {{"tokens", a.prompt_tokens}, {"tokens_per_s", pp.best}, {"tokens_per_s_median", pp.median}}},
      {"tg",
       {{"tokens", a.gen_tokens},
        {"tokens_per_s", tg.best},
        {"tokens_per_s_median", tg.median},
        {"bandwidth_bound_tokens_per_s", bound},
        {"share_of_bound", tg.best / bound}}},
      {"peak_rss_mb", peak_mb},
      {"kv_cache_mb", kv_bytes / 1e6}};
}

}  // namespace

void add_bench_model_command(CLI::App* bench) {
  auto* cmd =
      bench->add_subcommand("model", "prefill (pp) and decode (tg) tokens/s beside the read-bandwidth bound");
  auto a = std::make_shared<model_bench_args>();
  cmd->add_option("--model", a->model, "model folder or GGUF file (default: the bundled model)");
  cmd->add_option("-p,--prompt-tokens", a->prompt_tokens, "prefill length (pp)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-n,--gen-tokens", a->gen_tokens, "decode steps (tg)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-r,--repetitions", a->repetitions, "runs of each; best and median reported")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--seed", a->seed, "seed of the random prompt tokens");
  cmd->callback([a] {
    a->model = models::model_or_default(a->model);
    std::printf("%s\n", run(*a).dump().c_str());
  });
}

}  // namespace mlxd::app
