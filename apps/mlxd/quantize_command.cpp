#include <cstdio>
#include <cstdlib>
#include <map>

#include "commands.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/gguf.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_folder.h"

namespace mlxd::app {
namespace {

struct quant_type {
  const char* flag;
  dtype type;
  uint32_t file_type;  // llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*)
  bool mixed = false;  // llama.cpp's Q4_K_M mix: some tensors get Q6_K (mixed_type)
};
constexpr quant_type quant_types[] = {{"q8_0", dtype::q8_0, 7},
                                      {"q4_0", dtype::q4_0, 2},
                                      {"q4_k", dtype::q4_k, 14},
                                      {"q4_k_m", dtype::q4_k, 15, true},
                                      {"q6_k", dtype::q6_k, 18}};

// The dtype a tensor gets: 2-d float or quantized matrices take the target type when their rows are whole
// blocks of it, else q8_0 when they are whole blocks of 32 (llama.cpp also falls back for k-quants), else
// they stay as they are; 1-d tensors (norms, biases) stay float.
dtype choose(const array& a, dtype target) {
  if (a.ndim() != 2 || !(is_floating(a.type()) || is_quantized(a.type()))) return a.type();
  if (a.shape(1) % block_size(target) == 0) return target;
  if (a.shape(1) % block_size(dtype::q8_0) == 0) return dtype::q8_0;
  return a.type();
}

// The Q4_K_M mix, as llama.cpp's quantizer makes it for Llama-family models: the LM head (the embedding
// when tied) in Q6_K, attn_v and ffn_down in Q6_K in the first and last eighth of the layers and every third
// between, everything else Q4_K.
dtype mixed_type(const std::string& name, int n_layers, bool has_output) {
  if (name == "output.weight" || (!has_output && name == "token_embd.weight")) return dtype::q6_k;
  if (!name.starts_with("blk.") || !(name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight")))
    return dtype::q4_k;
  const int layer = std::atoi(name.c_str() + 4);
  const bool more_bits = layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
  return more_bits ? dtype::q6_k : dtype::q4_k;
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "write a GGUF file with the weight matrices block-quantized");
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>();
  cmd->add_option("IN", *in, "a GGUF file, or a Hugging Face model folder")->required();
  cmd->add_option("OUT", *out, "the GGUF file to write")->required();
  cmd->add_option("--type", *type, "q8_0, q4_0, q4_k, q4_k_m (llama.cpp's mix of Q4_K and Q6_K) or q6_k")
      ->required()
      ->check(CLI::IsMember({"q8_0", "q4_0", "q4_k", "q4_k_m", "q6_k"}));
  cmd->callback([in, out, type] {
    const quant_type* target = nullptr;
    for (const quant_type& q : quant_types) {
      if (*type == q.flag) target = &q;
    }
    models::gguf_model model;
    if (std::filesystem::path(*in).extension() == ".gguf") {
      gguf_file file = load_gguf(*in, {.keep_quantized = true});
      model.metadata = std::move(file.metadata);
      model.tensors = std::move(file.tensors);
    } else {
      const models::llama_config config = models::load_llama_config(*in);
      model = models::llama_to_gguf(config, models::load_llama_folder_weights(*in, config));
    }
    std::map<std::string, int> counts;
    size_t bytes_in = 0, bytes_out = 0;
    int n_layers = 0;
    for (const auto& [name, a] : model.tensors) n_layers += name.ends_with(".attn_v.weight");
    const bool has_output = model.tensors.contains("output.weight");
    for (auto& [name, a] : model.tensors) {
      bytes_in += a.nbytes();
      const dtype t = choose(a, target->mixed ? mixed_type(name, n_layers, has_output) : target->type);
      if (t != a.type()) a = astype(a, t);
      ++counts[std::string(mlxd::name(a.type()))];
      bytes_out += a.nbytes();
    }
    model.metadata.set("general.file_type", gguf_value(target->file_type));
    model.metadata.set("general.quantization_version", gguf_value(uint32_t{2}));
    save_gguf(*out, model.metadata, model.tensors);
    std::printf("wrote %s: %zu tensors (", out->c_str(), model.tensors.size());
    const char* sep = "";
    for (const auto& [type_name, n] : counts) std::printf("%s%d %s", sep, n, type_name.c_str()), sep = ", ";
    std::printf("), %.2f MB from %.2f MB\n", static_cast<double>(bytes_out) / 1e6,
                static_cast<double>(bytes_in) / 1e6);
  });
}

}  // namespace mlxd::app
