#include "mlxd/models/llama_folder.h"

#include <fstream>

#include "mlxd/io/io_error.h"
#include "mlxd/io/safetensors.h"
#include "models/mlx_dequantize.h"

namespace mlxd::models {

namespace fs = std::filesystem;

std::map<std::string, array> load_llama_folder_weights(
    const fs::path& dir, const llama_config& config, const safetensors_load_options& options,
    const std::function<bool(const std::string&)>& wanted) {
  safetensors_load_options read = options;
  read.u32_as_bytes = config.mlx_quantized.has_value();
  std::map<std::string, array> weights = load_model_weights(dir, read).tensors;
  if (config.mlx_quantized) {
    dequantize_mlx_weights(weights, *config.mlx_quantized, wanted);
  } else if (wanted) {
    std::erase_if(weights, [&](const auto& entry) { return !wanted(entry.first); });
  }
  return weights;
}

void save_llama_folder(const fs::path& dir, const llama_config& config,
                       const std::map<std::string, array>& weights, const fs::path& tokenizer_from) {
  fs::create_directories(dir);
  save_safetensors(dir / "model.safetensors", weights, {{"format", "pt"}});
  const fs::path config_path = dir / "config.json";
  {
    std::ofstream out(config_path);
    out << to_json(config) << "\n";
    if (!out.flush()) throw io_error("cannot write " + config_path.string());
  }
  if (tokenizer_from.empty() || (fs::exists(tokenizer_from) && fs::equivalent(tokenizer_from, dir))) return;
  for (const char* name : tokenizer_files)
    if (fs::exists(tokenizer_from / name))
      fs::copy_file(tokenizer_from / name, dir / name, fs::copy_options::overwrite_existing);
}

}  // namespace mlxd::models
