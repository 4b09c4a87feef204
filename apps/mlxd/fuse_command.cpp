#include <cstdio>
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/lora.h"

namespace mlxd::app {
namespace {

namespace fs = std::filesystem;

// The files of a HF folder that describe the tokenizer and generation, copied beside the fused weights.
const char* const side_files[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                                  "special_tokens_map.json", "tokenizer.model"};

dtype written_type(const array& a, const std::string& flag) {
  if (flag == "f32") return dtype::f32;
  if (flag == "f16") return dtype::f16;
  if (flag == "bf16") return dtype::bf16;
  return is_quantized(a.type()) ? dtype::f32 : a.type();  // safetensors holds no block-quantized types
}

}  // namespace

void add_fuse_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("fuse", "merge LoRA adapters (PEFT folder) into a model: a new HF folder");
  auto model = std::make_shared<std::string>();
  auto adapters = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>("keep");
  cmd->add_option("--model", *model, "base model folder (or .gguf file with float weights)")->required();
  cmd->add_option("--adapters", *adapters, "adapter folder (adapter_config.json, adapter_model.safetensors)")
      ->required();
  cmd->add_option("--out", *out, "output folder (created)")->required();
  cmd->add_option("--dtype", *type, "float type of the written weights (default keep)")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}));
  cmd->callback([model, adapters, out, type] {
    if (fs::exists(*out) && fs::exists(*model) && fs::equivalent(*out, *model))
      throw std::invalid_argument("--out must differ from --model");
    models::hf_model m = models::load_fused_model(*model, *adapters);
    size_t bytes = 0;
    for (auto& [name, a] : m.weights) {
      const dtype t = written_type(a, *type);
      if (t != a.type()) a = astype(a, t);
      bytes += a.nbytes();
    }
    fs::create_directories(*out);
    save_safetensors(fs::path(*out) / "model.safetensors", m.weights, {{"format", "pt"}});
    // A folder's own config.json keeps fields mlxd does not read; a GGUF file's config is rebuilt.
    const fs::path base = *model;
    int copied = 0;
    if (fs::is_directory(base)) {
      fs::copy_file(base / "config.json", fs::path(*out) / "config.json",
                    fs::copy_options::overwrite_existing);
      for (const char* f : side_files) {
        if (!fs::exists(base / f)) continue;
        fs::copy_file(base / f, fs::path(*out) / f, fs::copy_options::overwrite_existing);
        ++copied;
      }
    } else {
      std::ofstream config(fs::path(*out) / "config.json");
      config << models::to_json(m.config) << "\n";
      if (!config.flush())
        throw std::runtime_error("cannot write " + (fs::path(*out) / "config.json").string());
    }
    std::printf("wrote %s: %zu tensors, %.2f MB, %d tokenizer/generation files copied\n", out->c_str(),
                m.weights.size(), static_cast<double>(bytes) / 1e6, copied);
  });
}

}  // namespace mlxd::app
