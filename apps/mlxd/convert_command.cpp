#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/gguf.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_folder.h"
#include "mlxd/tokenizer/tokenizer_error.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer_export.h"

namespace mlxd::app {
namespace {

namespace fs = std::filesystem;

// The dtype a tensor is written in: --dtype for float tensors when given; block-quantized ones become f32 in
// a folder (safetensors has no such types) and stay as they are in GGUF.
dtype target_type(const array& a, const std::string& flag, bool to_gguf) {
  if (flag == "f32") return dtype::f32;
  if (flag == "f16") return dtype::f16;
  if (flag == "bf16") return dtype::bf16;
  return is_quantized(a.type()) && !to_gguf ? dtype::f32 : a.type();
}

void convert_weights(std::map<std::string, array>& weights, const std::string& flag, bool to_gguf) {
  for (auto& [name, a] : weights) {
    // Norms and biases stay f32 in GGUF, as llama.cpp's converter keeps 1-d tensors.
    const dtype t = to_gguf && a.ndim() == 1 ? dtype::f32 : target_type(a, flag, to_gguf);
    if (t != a.type()) a = astype(a, t);
  }
}

size_t total_bytes(const std::map<std::string, array>& weights) {
  size_t n = 0;
  for (const auto& [name, a] : weights) n += a.nbytes();
  return n;
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("convert", "Hugging Face folder -> GGUF file, or GGUF file -> Hugging Face folder");
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>("keep");
  auto tokenizer_dir = std::make_shared<std::string>();
  cmd->add_option("IN", *in, "a model folder (config.json, safetensors) or a .gguf file")->required();
  cmd->add_option("OUT", *out, "OUT.gguf for a folder; a folder (created) for a GGUF file")->required();
  cmd->add_option("--dtype", *type,
                  "float type of the written weights (default keep; quantized -> f32 in folders)")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}));
  cmd->add_option("--tokenizer", *tokenizer_dir,
                  "folder with tokenizer.json to embed in the GGUF (default: IN)");
  cmd->callback([in, out, type, tokenizer_dir] {
    if (fs::path(*in).extension() == ".gguf") {
      if (fs::path(*out).extension() == ".gguf")
        throw std::invalid_argument(
            "OUT must be a folder when IN is a GGUF file (use mlxd quantize for GGUF->GGUF)");
      models::hf_model m = models::llama_from_gguf(*in);
      convert_weights(m.weights, *type, false);
      models::save_llama_folder(*out, m.config, m.weights);
      std::printf("wrote %s: %zu tensors, %.2f MB\n", out->c_str(), m.weights.size(),
                  static_cast<double>(total_bytes(m.weights)) / 1e6);
      gguf_load_options header_only;
      header_only.read_tensors = false;
      if (load_gguf(*in, header_only).metadata.contains("tokenizer.ggml.model"))
        std::printf("its tokenizer stays in %s: pass that file as --tokenizer\n", in->c_str());
      return;
    }
    if (fs::path(*out).extension() != ".gguf")
      throw std::invalid_argument("OUT must end in .gguf when IN is a model folder");
    const models::llama_config config = models::load_llama_config(*in);
    models::gguf_model g = models::llama_to_gguf(config, models::load_llama_folder_weights(*in, config));
    convert_weights(g.tensors, *type, true);
    std::string tokenizer_note = "with its tokenizer";
    const fs::path tokenizer_folder = tokenizer_dir->empty() ? fs::path(*in) : fs::path(*tokenizer_dir);
    if (!fs::exists(tokenizer_folder / "tokenizer.json") &&
        !fs::exists(tokenizer_folder / "tokenizer.model")) {
      tokenizer_note =
          "no tokenizer (no tokenizer.json or tokenizer.model in " + tokenizer_folder.string() + ")";
    } else {
      try {
        add_gguf_tokenizer(tokenizer_folder, g.metadata);
      } catch (const tokenizer_error& e) {
        tokenizer_note = std::string("without its tokenizer: ") + e.what();
      }
    }
    save_gguf(*out, g.metadata, g.tensors);
    std::printf("wrote %s: %zu tensors, %.2f MB, %s\n", out->c_str(), g.tensors.size(),
                static_cast<double>(total_bytes(g.tensors)) / 1e6, tokenizer_note.c_str());
  });
}

}  // namespace mlxd::app
