// `mlxd bench pipeline`: aggregate decode tokens/s of N sequences generating at once over a pipeline of
// worker nodes, beside one sequence on the same pipeline in the same run (issue 6: at 4 and 8 sequences,
// at least 2x one). The sequences call the coordinator's generate() from threads of their own, as the
// server's requests do, so no HTTP or client is in the figures. Two figures per level: all tokens over the
// level's wall time (the N prompts' prefills, which run one after another, included), and the steady
// decode rate while every sequence decodes (each stage's batch is then N).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_stats.h"
#include "commands.h"
#include "dist_commands.h"
#include "mlxd/dist/coordinator.h"

namespace mlxd::app {
namespace {

using clock_type = std::chrono::steady_clock;

struct pipeline_bench_args {
  std::string model;
  cluster_flags cluster;
  std::vector<int> streams = {1, 4, 8};
  int tokens = 64;
  int prompt_tokens = 16;
  int rounds = 2;
};

// A distinct prompt per stream, the same in every round and level.
std::vector<int32_t> prompt_of(int stream, int length, int vocab) {
  std::vector<int32_t> p(length);
  for (int i = 0; i < length; ++i) p[i] = static_cast<int32_t>((1 + 7 * stream + 13 * i) % vocab);
  return p;
}

struct level_run {
  double tokens_per_s = 0;
  // Tokens that arrived after the last sequence's first token and up to the first sequence's end, per second
  // of that window; 0 when the window is empty (a sequence ended before another began to decode).
  double steady_tokens_per_s = 0;
  int tokens = 0;
  int max_stage_batch = 0;
  std::vector<int32_t> first_stream_tokens;  // stream 0's, to compare with it alone
};

// Tokens per second in the window where every sequence decodes: from the last first token to the first
// last token (for one sequence, its decode rate).
double steady_rate(const std::vector<std::vector<clock_type::time_point>>& arrivals) {
  clock_type::time_point begin = clock_type::time_point::min(), end = clock_type::time_point::max();
  for (const auto& a : arrivals) {
    if (a.empty()) return 0;
    begin = std::max(begin, a.front());
    end = std::min(end, a.back());
  }
  if (end <= begin) return 0;
  int64_t tokens = 0;
  for (const auto& a : arrivals)
    tokens +=
        std::count_if(a.begin(), a.end(), [&](clock_type::time_point t) { return t > begin && t <= end; });
  return static_cast<double>(tokens) / std::chrono::duration<double>(end - begin).count();
}

// `n` sequences at once, each of exactly `a.tokens` greedy tokens.
level_run run_level(dist::coordinator& c, const pipeline_bench_args& a, int n) {
  std::vector<dist::generation_result> results(n);
  std::vector<std::string> errors(n);
  std::vector<std::vector<clock_type::time_point>> arrivals(n);
  const auto start = clock_type::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < n; ++s) {
    threads.emplace_back([&, s] {
      dist::generation_request r;
      r.prompt = prompt_of(s, a.prompt_tokens, c.config().vocab_size);
      r.max_tokens = a.tokens;
      r.sampling.temperature = 0;
      r.on_token = [&arrivals, s](const engine::sample_result&) { arrivals[s].push_back(clock_type::now()); };
      try {
        results[s] = c.generate(r);
      } catch (const std::exception& e) {
        errors[s] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  for (const std::string& e : errors)
    if (!e.empty()) throw std::runtime_error("bench pipeline: a sequence failed: " + e);
  level_run out;
  for (const auto& r : results) {
    out.tokens += static_cast<int>(r.tokens.size());
    out.max_stage_batch = std::max(out.max_stage_batch, r.max_stage_batch);
  }
  out.tokens_per_s = out.tokens / seconds;
  out.steady_tokens_per_s = steady_rate(arrivals);
  out.first_stream_tokens = results[0].tokens;
  return out;
}

nlohmann::json run(const pipeline_bench_args& a) {
  dist::coordinator c(a.model, coordinator_options_of(a.cluster));
  std::vector<int> levels = a.streams;
  std::sort(levels.begin(), levels.end());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  if (levels.front() != 1) levels.insert(levels.begin(), 1);  // the baseline
  // Ascending then descending in every round, so drift on a shared machine hits both ends alike.
  std::vector<int> order = levels;
  order.insert(order.end(), levels.rbegin(), levels.rend());
  std::map<int, std::vector<double>> rates, steady;
  std::map<int, int> batches;
  std::map<int, bool> same;
  std::vector<int32_t> alone;
  run_level(c, a, 1);  // warm-up: the stages' caches and the streams
  for (int round = 0; round < a.rounds; ++round) {
    for (int n : order) {
      const level_run r = run_level(c, a, n);
      if (r.tokens != n * a.tokens)
        throw std::runtime_error("bench pipeline: " + std::to_string(n) + " sequences made " +
                                 std::to_string(r.tokens) + " tokens, not " + std::to_string(n * a.tokens));
      if (n == 1 && alone.empty()) alone = r.first_stream_tokens;
      rates[n].push_back(r.tokens_per_s);
      steady[n].push_back(r.steady_tokens_per_s);
      batches[n] = std::max(batches[n], r.max_stage_batch);
      same.try_emplace(n, true);
      same[n] = same[n] && r.first_stream_tokens == alone;
    }
  }
  const double one = median(rates[1]), one_steady = median(steady[1]);
  nlohmann::json out_levels = nlohmann::json::array();
  for (int n : levels) {
    out_levels.push_back({{"streams", n},
                          {"tokens_per_s", median(rates[n])},
                          {"ratio_vs_one_stream", median(rates[n]) / one},
                          {"runs", rates[n]},
                          {"steady_decode_tokens_per_s", median(steady[n])},
                          {"steady_ratio_vs_one_stream", one_steady > 0 ? median(steady[n]) / one_steady : 0},
                          {"steady_runs", steady[n]},
                          {"max_stage_batch", batches[n]},
                          {"same_tokens_as_alone", same[n]}});
  }
  return {{"benchmark", "pipeline_aggregate"},
          {"model", a.model},
          {"plan", c.plan_description()},
          {"tokens_per_stream", a.tokens},
          {"prompt_tokens", a.prompt_tokens},
          {"rounds", a.rounds},
          {"levels", out_levels}};
}

}  // namespace

void add_bench_pipeline_command(CLI::App* bench) {
  auto* cmd = bench->add_subcommand(
      "pipeline", "aggregate decode tokens/s of 1, 4, 8 sequences at once over worker nodes, as JSON");
  auto a = std::make_shared<pipeline_bench_args>();
  cmd->add_option("--model", a->model,
                  "model folder or GGUF file (workers read the same path unless --ship-weights)")
      ->required();
  add_cluster_flags(cmd, a->cluster, true);
  cmd->add_option("--streams", a->streams, "sequences at once, per level (1 is always run)")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  cmd->add_option("--tokens", a->tokens, "tokens each sequence generates")->check(CLI::Range(1, 100000));
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "prompt length")->check(CLI::Range(1, 100000));
  cmd->add_option("--rounds", a->rounds, "times every level runs (levels go up, then down)")
      ->check(CLI::Range(1, 1000));
  cmd->callback([a] {
    if (a->cluster.workers.empty()) throw std::invalid_argument("bench pipeline: --workers is required");
    std::cout << run(*a).dump(1) << "\n";
  });
}

}  // namespace mlxd::app
