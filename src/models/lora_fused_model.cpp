#include "mlxd/models/llama_folder.h"
#include "mlxd/models/lora.h"

namespace mlxd::models {

hf_model load_fused_model(const std::filesystem::path& model_path, const std::filesystem::path& adapter_dir) {
  hf_model m;
  if (model_path.extension() == ".gguf") {
    m = llama_from_gguf(model_path);
  } else {
    m.config = load_llama_config(model_path);
    m.weights = load_llama_folder_weights(model_path, m.config);
  }
  const lora_adapters adapters = load_lora_adapters(adapter_dir, &m.config);
  m.weights = fuse_lora(m.config, std::move(m.weights), adapters);
  return m;
}

}  // namespace mlxd::models
