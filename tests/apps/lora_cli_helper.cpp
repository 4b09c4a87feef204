// Helper of the `mlxd fuse` CLI tests, computing through the library what the CLI should reproduce.
//   lora_cli_helper write MODEL_DIR ADAPTER_DIR: seeded adapters for the model with non-zero B (as after
//     training), saved in PEFT's layout.
//   lora_cli_helper check MODEL_DIR ADAPTER_DIR TOKENS LOGITS: the LoRA forward (training_logits with the
//     adapters, not fused) on TOKENS (comma-separated) against the "logits" tensor of LOGITS.safetensors;
//     prints "match" and exits 0 when every logit agrees within 1e-5.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/lora.h"

namespace {

using namespace mlxd;
using namespace mlxd::models;

int write(const std::string& model_dir, const std::string& adapter_dir) {
  const llama_config c = load_llama_config(model_dir);
  lora_config l;
  l.rank = 4;
  l.alpha = 6.0;
  l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"};
  auto params = init_lora_params(c, l, 17);
  uint64_t stream = 0;
  for (auto& [name, a] : params)
    if (name.ends_with("lora_B.weight")) a = random::normal({18, stream++}, a.shape(), 0.0f, 0.2f);
  save_lora_adapters(adapter_dir, l, params, model_dir);
  std::printf("wrote %zu adapter tensors\n", params.size());
  return 0;
}

int check(const std::string& model_dir, const std::string& adapter_dir, const std::string& tokens,
          const std::string& logits_file) {
  const llama_config c = load_llama_config(model_dir);
  auto weights = load_model_weights(model_dir).tensors;
  const lora_adapters ad = load_lora_adapters(adapter_dir, &c);
  for (const auto& [name, a] : ad.params) weights.emplace(name, a);
  std::vector<int32_t> ids;
  std::stringstream in(tokens);
  for (std::string item; std::getline(in, item, ',');) ids.push_back(std::stoi(item));
  const int64_t n = static_cast<int64_t>(ids.size());
  const lora_forward f{ad.config, {0}, false};
  const array want =
      reshape(training_logits(c, weights, make_train_batch(array::from(ids, {1, n})), &f), {n, c.vocab_size});
  const array got = load_safetensors(logits_file).tensors.at("logits");
  const array base =
      reshape(training_logits(c, weights, make_train_batch(array::from(ids, {1, n}))), {n, c.vocab_size});
  if (got.shape() != want.shape()) {
    std::printf("logits are %s, expected %s\n", got.to_string().c_str(), want.to_string().c_str());
    return 1;
  }
  const float diff = max(abs(subtract(got, want))).item<float>();
  const float adapted = max(abs(subtract(base, want))).item<float>();  // how much the adapters change
  std::printf("max abs diff %g (the adapters move logits by up to %g): %s\n", diff, adapted,
              diff <= 1e-5f && adapted > 1e-3f ? "match" : "MISMATCH");
  return diff <= 1e-5f && adapted > 1e-3f ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "write" && argc == 4) return write(argv[2], argv[3]);
    if (mode == "check" && argc == 6) return check(argv[2], argv[3], argv[4], argv[5]);
    std::fprintf(stderr,
                 "usage: lora_cli_helper write MODEL ADAPTERS | check MODEL ADAPTERS TOKENS LOGITS\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lora_cli_helper: %s\n", e.what());
    return 1;
  }
}
