// LoRA (low-rank adaptation) for the trainable Llama: adapter parameters under PEFT's names, the adapted
// forward, PEFT's on-disk adapter folder, and fusing adapters into the base weights.
//
// A targeted linear layer y = x W^T (+ b), W [out, in], gains a branch scale * dropout(x) A^T B^T with
// A [rank, in], B [out, rank] and scale = alpha / rank. The base weights stay constants; only A and B train.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/core/random.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_config.h"
#include "mlxd/models/llama_train.h"

namespace mlxd::models {

struct lora_config {
  int64_t rank = 8;
  double alpha = 16.0;   // scale = alpha / rank
  double dropout = 0.0;  // on the LoRA branch's input, training only; in [0, 1)
  std::vector<std::string> targets = {"q_proj", "v_proj"};  // module names, see lora_modules()
  double scale() const { return alpha / static_cast<double>(rank); }
};

// The module names a LoRA config may target, in the fixed order used for parameter names and dropout keys:
// q_proj k_proj v_proj o_proj gate_proj up_proj down_proj.
const std::vector<std::string>& lora_modules();
// Throws std::invalid_argument naming the field: rank < 1, alpha not finite, dropout outside [0, 1), no
// targets, an unknown or repeated target.
void check_lora_config(const lora_config& config);

// One adapted linear layer: its HF module path ("model.layers.3.self_attn.q_proj"), its weight's [out, in],
// and its index (layer * 7 + module position) from which its dropout key is split.
struct lora_site {
  std::string module;
  int64_t out = 0, in = 0;
  uint64_t index = 0;
  std::string a_name() const { return module + ".lora_A.weight"; }  // [rank, in]
  std::string b_name() const { return module + ".lora_B.weight"; }  // [out, rank]
};
// Every adapted layer, by layer and then module in lora_modules() order. Checks the config.
std::vector<lora_site> lora_sites(const llama_config& model, const lora_config& lora);

// PEFT's names without the "base_model.model." prefix, in the order of lora_sites, lora_A before lora_B:
// "model.layers.{i}.self_attn.q_proj.lora_A.weight" [rank, in], "...lora_B.weight" [out, rank].
std::vector<std::string> lora_param_names(const llama_config& model, const lora_config& lora);
// Fresh f32 adapters: A uniform in +-1/sqrt(in) (PEFT's kaiming_uniform(a = sqrt(5))), seeded per tensor;
// B zeros, so the adapted model starts equal to the base.
std::map<std::string, array> init_lora_params(const llama_config& model, const lora_config& lora,
                                              uint64_t seed);
// Throws std::invalid_argument naming a missing, mis-shaped or non-float adapter tensor of `params`.
void check_lora_params(const llama_config& model, const lora_config& lora,
                       const std::map<std::string, array>& params);

// How training_logits applies adapters. Each site's dropout mask comes from split(dropout_key, site.index):
// give a fresh key per step (e.g. split(run_key, step)) for fresh masks, the same key to repeat a step.
struct lora_forward {
  lora_config config;
  random::key dropout_key;
  bool training = true;  // false: no dropout (evaluation)
};
// training_logits with adapters: `params` holds the base weights (as for the plain overload) and every name
// of lora_param_names. A null `lora` is the plain forward. Throws as the plain overload and as
// check_lora_params.
array training_logits(const llama_config& config, const std::map<std::string, array>& params,
                      const train_batch& batch, const lora_forward* lora);
// The final-norm hidden states [batch, seq, hidden] f32 that training_logits multiplies by the LM head (what
// a reward or value head reads). Checks and throws as training_logits.
array training_hidden(const llama_config& config, const std::map<std::string, array>& params,
                      const train_batch& batch, const lora_forward* lora = nullptr);

// An adapter folder in PEFT's layout: adapter_model.safetensors (keys "base_model.model.<name>") and
// adapter_config.json (peft_type "LORA", r, lora_alpha, lora_dropout, target_modules, bias "none", task_type
// "CAUSAL_LM", base_model_name_or_path). Creates `dir`; the tensors are written atomically.
void save_lora_adapters(const std::filesystem::path& dir, const lora_config& config,
                        const std::map<std::string, array>& lora_params, const std::string& base_model);
struct lora_adapters {
  lora_config config;
  std::map<std::string, array> params;  // names as lora_param_names (prefix removed)
  std::string base_model;               // base_model_name_or_path, or empty
};
// Reads a folder save_lora_adapters (or PEFT) wrote. Throws std::invalid_argument naming the file and field
// for a malformed or unsupported adapter_config.json (other peft types, bias, DoRA, rsLoRA, per-layer
// patterns) and for a missing, extra or mis-shaped tensor; io_error for unreadable files. With `model`, every
// tensor is also checked against that model's shapes; without, A and B of each module must agree with r.
lora_adapters load_lora_adapters(const std::filesystem::path& dir, const llama_config* model = nullptr);

// The base weights with every targeted W replaced by W + scale * B A (computed in f32, stored in W's float
// dtype); other weights are shared, not copied. Throws std::invalid_argument for adapters that do not fit
// `config` or a block-quantized targeted weight.
std::map<std::string, array> fuse_lora(const llama_config& config, std::map<std::string, array> base,
                                       const lora_adapters& adapters);

// The config and weights of a model folder or GGUF file (as load_llama reads them) with the adapters of
// `adapter_dir` fused in, checked against the model. Targeted weights must be float (a block-quantized GGUF
// weight is refused by name); other weights are returned as loaded.
hf_model load_fused_model(const std::filesystem::path& model_path, const std::filesystem::path& adapter_dir);

}  // namespace mlxd::models
