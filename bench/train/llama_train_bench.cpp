// Training throughput of a Llama step (forward, mean token loss, backward, AdamW update) for the
// ~15M-parameter model of issue 7, on 1 and 2 threads, beside PyTorch running the same step in the same run
// when /usr/bin/python3 has torch. Prints JSON.
//
// Usage: llama_train_bench [STEPS] [TORCH_SCRIPT] [THREADS]
//   (STEPS default 3; TORCH_SCRIPT default beside the source, a missing file skips PyTorch; THREADS 1 or 2
//   runs only that count, for profiling one of them)
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_train.h"
#include "mlxd/train/adam.h"

namespace {

using namespace mlxd;
using namespace mlxd::models;

constexpr int kRows = 8, kSeq = 256;
constexpr double kPeakPerCore = 206e9;  // f32 FMA peak of one core here (AVX-512, 2 FMA units)

llama_config bench_config() {
  llama_config c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 32000;
  c.hidden_size = 288;
  c.intermediate_size = 768;
  c.n_layers = 6;
  c.n_heads = 6;
  c.n_kv_heads = 6;
  c.head_dim = 48;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = kSeq;
  return c;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// PyTorch at its best here (issue 7): OpenBLAS's AVX-512 kernels, OpenMP threads that sleep, and a malloc
// that keeps freed memory instead of faulting it in again. The default environment runs 3-5x slower.
constexpr const char* kTorchEnv =
    "OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0 "
    "MALLOC_TRIM_THRESHOLD_=68719476736 "
    "MALLOC_TOP_PAD_=1073741824";

// Runs the PyTorch baseline; null when python3 or torch is missing.
nlohmann::json torch_baseline(const std::string& script, int threads, int steps, const llama_config& c) {
  const std::string cmd = std::string(kTorchEnv) + " OMP_NUM_THREADS=" + std::to_string(threads) +
                          " OPENBLAS_NUM_THREADS=" + std::to_string(threads) + " /usr/bin/python3 " + script +
                          " " + std::to_string(threads) + " " + std::to_string(steps) + " " +
                          std::to_string(c.vocab_size) + " " + std::to_string(c.hidden_size) + " " +
                          std::to_string(c.n_layers) + " " + std::to_string(c.n_heads) + " " +
                          std::to_string(c.intermediate_size) + " " + std::to_string(kRows) + " " +
                          std::to_string(kSeq) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return nullptr;
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  if (pclose(p) != 0 || out.empty()) return nullptr;
  return nlohmann::json::parse(out, nullptr, false);
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::stoi(argv[1]) : 3;
  const std::string script = argc > 2 ? argv[2] : MLXD_TRAIN_TORCH_SCRIPT;
  const llama_config c = bench_config();
  const auto weights = init_llama_weights(c, 1);
  const auto names = llama_param_names(c);
  std::vector<array> params;
  int64_t n_params = 0;
  for (const auto& n : names) params.push_back(weights.at(n)), n_params += weights.at(n).size();
  auto random_ids = [&](uint64_t stream) {  // uniform ids in [0, vocab): truncation of [0, vocab) floats
    return astype(random::uniform({7, stream}, {kRows, kSeq}, 0.0f, static_cast<float>(c.vocab_size - 1)),
                  dtype::i32);
  };
  const array tokens = random_ids(0), labels = random_ids(1);
  const train_batch batch = make_train_batch(tokens);
  train::adam opt(names, params, {.weight_decay = 0.1}, /*decoupled=*/true);
  auto step = [&] {
    auto [loss, grads] = value_and_grad(
        [&](const std::vector<array>& p) {
          const token_loss l = masked_cross_entropy(training_logits(c, bind_params(names, p), batch), labels);
          return multiply(l.sum, array(1.0f / static_cast<float>(l.n_tokens)));
        },
        params);
    opt.step(params, grads, 3e-4);
    return loss;
  };
  const double tokens_per_step = kRows * kSeq;
  nlohmann::json runs = nlohmann::json::array();
  std::vector<int> counts = {1, 2};
  if (argc > 3) counts = {std::stoi(argv[3])};
  for (int threads : counts) {
    set_num_threads(threads);
    step();  // warm-up: allocator pools, OpenBLAS buffers
    const auto t0 = std::chrono::steady_clock::now();
    float loss = 0;
    for (int i = 0; i < steps; ++i) loss = step().item<float>();
    const double step_s = seconds_since(t0) / steps;
    const double tps = tokens_per_step / step_s;
    nlohmann::json run = {{"threads", threads},
                          {"step_s", step_s},
                          {"tokens_per_s", tps},
                          {"loss", loss},
                          {"mfu", 6.0 * static_cast<double>(n_params) * tps / (kPeakPerCore * threads)}};
    const nlohmann::json torch = torch_baseline(script, threads, steps, c);
    if (torch.is_object()) {
      run["torch_tokens_per_s"] = torch.at("tokens_per_s");
      run["speedup_vs_torch"] = tps / torch.at("tokens_per_s").get<double>();
    }
    runs.push_back(run);
  }
  const nlohmann::json out = {{"benchmark", "llama_train"},
                              {"model",
                               {{"params", n_params},
                                {"dim", c.hidden_size},
                                {"layers", c.n_layers},
                                {"heads", c.n_heads},
                                {"ffn", c.intermediate_size},
                                {"vocab", c.vocab_size},
                                {"tied_embeddings", c.tie_word_embeddings}}},
                              {"batch", kRows},
                              {"seq", kSeq},
                              {"steps", steps},
                              {"torch_env", kTorchEnv},
                              {"peak_flops_per_core", kPeakPerCore},
                              {"runs", runs}};
  std::cout << out.dump(1) << "\n";
  return 0;
}
