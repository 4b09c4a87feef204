// The best a pipeline of local processes can do on this machine: a model's decode split over 1, 2 and 3
// processes that run mlxd's own stage forward (load_llama_stage, forward_layers, head) and pass each hidden
// state and token through a pipe, with no gRPC, protobuf or coordinator. The last stage sends its greedy
// token straight back to the first, as a ring does. What is lost against one process is what splitting
// itself costs here (each stage's threads sleep while the others compute and then wake), the floor under
// issue 6's "0.9x of one node" for bench/dist/pipeline_bench.sh. Each round runs 1, 2, 3, 3, 2, 1 processes.
// Usage: split_floor MODEL [THREADS] [ROUNDS] [TOKENS]   (JSON on stdout; MODEL from `mlxd init`)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/models/llama.h"

namespace {

using namespace mlxd;
using clock_type = std::chrono::steady_clock;

void write_all(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w <= 0) throw std::runtime_error("pipe write failed");
    p += w, n -= static_cast<size_t>(w);
  }
}

void read_all(int fd, void* data, size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r <= 0) throw std::runtime_error("pipe read failed");
    p += r, n -= static_cast<size_t>(r);
  }
}

int32_t greedy(const array& logits) {
  const array l = contiguous(logits);
  const float* row = l.data<float>() + (l.shape(0) - 1) * l.shape(1);
  return static_cast<int32_t>(std::max_element(row, row + l.shape(1)) - row);
}

// Stage `index` of `n` (the layers split as evenly as the config allows, the remainder to the last): reads
// a token (first stage) or hidden rows from `in`, writes hidden rows or the next token to `out`. Each stage
// writes the seconds its decode steps computed to `report` (from its input's arrival to its output, as a
// worker's stage time counts); the first one then the decode time and the tokens.
void run_stage(const std::filesystem::path& model_path, int index, int n, int threads, int tokens, int in,
               int out, int report) {
  set_num_threads(threads);
  const models::llama_config config = models::load_llama_config_any(model_path);
  const int per = config.n_layers / n;
  models::llama_stage stage;
  stage.layer_begin = index * per;
  stage.layer_end = index + 1 == n ? config.n_layers : (index + 1) * per;
  stage.embedding = index == 0;
  stage.head = index + 1 == n;
  const models::llama_model model = models::load_llama_stage(model_path, stage);
  const std::vector<int32_t> prompt = {1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61};
  models::kv_cache cache = model.make_cache(static_cast<int>(prompt.size()) + tokens);
  const int64_t hidden = config.hidden_size;
  std::vector<int32_t> made;
  clock_type::time_point decode_start;
  double compute_s = 0;  // decode steps only
  // One step of this stage: its input (token ids or hidden rows), its layers, then on to the next stage.
  auto step = [&](const std::vector<int32_t>& ids, int64_t rows) {
    array x;
    std::vector<float> h;
    if (!stage.embedding) {
      h.resize(static_cast<size_t>(rows * hidden));
      read_all(in, h.data(), h.size() * sizeof(float));
    }
    const auto start = clock_type::now();
    x = stage.embedding ? model.embed(ids) : array::from(h, {rows, hidden});
    x = model.forward_layers(x, cache);
    const int32_t t = stage.head ? greedy(model.head(x)) : -1;
    const array c = stage.head ? array() : contiguous(x);
    if (rows == 1) compute_s += std::chrono::duration<double>(clock_type::now() - start).count();
    if (!stage.head || !stage.embedding) mlxd::expect_serial_work();  // as a pipeline stage: the next waits
    if (stage.head && !stage.embedding) write_all(out, &t, sizeof t);
    if (!stage.head) write_all(out, c.data<float>(), static_cast<size_t>(rows * hidden) * sizeof(float));
    return t;
  };
  auto next_token = [&](int32_t local) {
    if (stage.head) return local;  // one process
    int32_t t = 0;
    read_all(in, &t, sizeof t);
    return t;
  };
  const auto rows = static_cast<int64_t>(prompt.size());
  if (stage.embedding) {
    made.push_back(next_token(step(prompt, rows)));
    decode_start = clock_type::now();
    while (static_cast<int>(made.size()) < tokens) made.push_back(next_token(step({made.back()}, 1)));
    const double seconds = std::chrono::duration<double>(clock_type::now() - decode_start).count();
    write_all(report, &compute_s, sizeof compute_s);
    write_all(report, &seconds, sizeof seconds);
    write_all(report, made.data(), made.size() * sizeof(int32_t));
  } else {
    step({}, rows);
    for (int i = 1; i < tokens; ++i) step({}, 1);
    write_all(report, &compute_s, sizeof compute_s);
  }
}

struct result {
  double tokens_per_s = 0;
  double compute_ms = 0;  // per decode token, all stages
  double added_ms_per_hop = 0;
  std::vector<int32_t> tokens;
};

// Forks the `n` stages of one run, joined by pipes in a ring; kernels run only in the children, so that
// none inherits a thread pool without its threads.
result run_split(const std::filesystem::path& model, int n, int threads, int tokens) {
  // Pipe i feeds stage i; report pipe i carries stage i's figures.
  std::vector<int> read_end(n), write_end(n), report_read(n), report_write(n);
  for (int i = 0; i < n; ++i) {
    int fd[2], rep[2];
    if (pipe(fd) != 0 || pipe(rep) != 0) throw std::runtime_error("pipe failed");
    read_end[i] = fd[0], write_end[i] = fd[1];
    report_read[i] = rep[0], report_write[i] = rep[1];
  }
  std::vector<pid_t> children;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      int code = 0;
      try {
        run_stage(model, i, n, threads, tokens, read_end[i], write_end[(i + 1) % n], report_write[i]);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "stage %d: %s\n", i, e.what());
        code = 1;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  // Only the stages write reports: a stage that fails ends its report early instead of leaving it open.
  for (int i = 0; i < n; ++i) close(report_write[i]);
  result r;
  double seconds = 0, compute_s = 0;
  bool failed = false;
  try {
    for (int i = 0; i < n; ++i) {
      double s = 0;
      read_all(report_read[i], &s, sizeof s);
      compute_s += s;
      if (i > 0) continue;
      read_all(report_read[0], &seconds, sizeof seconds);
      r.tokens.resize(static_cast<size_t>(tokens));
      read_all(report_read[0], r.tokens.data(), r.tokens.size() * sizeof(int32_t));
    }
  } catch (const std::runtime_error&) {
    failed = true;  // the others may wait on the failed stage's pipes forever
    for (pid_t pid : children) kill(pid, SIGKILL);
  }
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  for (int i = 0; i < n; ++i) close(read_end[i]), close(write_end[i]), close(report_read[i]);
  if (failed) throw std::runtime_error("a stage of the " + std::to_string(n) + "-process run failed");
  const double steps = tokens - 1;
  r.tokens_per_s = steps / seconds;
  r.compute_ms = compute_s * 1000 / steps;
  r.added_ms_per_hop = n > 1 ? (seconds * 1000 / steps - r.compute_ms) / n : 0;
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: split_floor MODEL [THREADS] [ROUNDS] [TOKENS]\n");
    return 2;
  }
  const std::filesystem::path model = argv[1];
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 2;
  const int rounds = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2;
  const int tokens = argc > 4 ? std::max(2, std::atoi(argv[4])) : 64;
  try {
    models::load_llama_config_any(model);  // a bad path is refused here, before any process starts
  } catch (const std::exception& e) {
    std::fprintf(stderr, "split_floor: %s\n", e.what());
    return 2;
  }
  std::map<int, std::vector<double>> speeds, computes, hops;
  nlohmann::json runs = nlohmann::json::array();
  std::vector<int32_t> alone;
  bool same_tokens = true;
  for (int r = 0; r < rounds; ++r)
    for (int n : {1, 2, 3, 3, 2, 1}) {
      result got;
      try {
        got = run_split(model, n, threads, tokens);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "split_floor: %s\n", e.what());
        return 1;
      }
      if (alone.empty() && n == 1) alone = got.tokens;
      same_tokens = same_tokens && (alone.empty() || got.tokens == alone);
      speeds[n].push_back(got.tokens_per_s);
      computes[n].push_back(got.compute_ms);
      hops[n].push_back(got.added_ms_per_hop);
      runs.push_back({{"processes", n},
                      {"decode_tokens_per_s", got.tokens_per_s},
                      {"decode_compute_ms", got.compute_ms},
                      {"added_ms_per_hop", got.added_ms_per_hop}});
    }
  nlohmann::json summary;
  for (const auto& [n, v] : speeds)
    summary[std::to_string(n)] = {{"decode_tokens_per_s", median(v)},
                                  {"ratio_vs_one_process", median(v) / median(speeds[1])},
                                  {"decode_compute_ms", median(computes[n])},
                                  {"added_ms_per_hop", median(hops[n])},
                                  {"runs", v.size()}};
  const nlohmann::json out = {{"benchmark", "split_floor"}, {"threads", threads}, {"tokens", tokens},
                              {"same_tokens", same_tokens}, {"summary", summary}, {"runs", runs}};
  std::printf("%s\n", out.dump().c_str());
  return same_tokens ? 0 : 1;
}
