#include "mlxd/io/safetensors.h"
#include "mlxd/models/lora.h"

namespace mlxd::models {

hf_model load_fused_model(const std::filesystem::path& model_path, const std::filesystem::path& adapter_dir) {
  hf_model m = model_path.extension() == ".gguf"
                   ? llama_from_gguf(model_path)
                   : hf_model{load_llama_config(model_path), load_model_weights(model_path).tensors};
  const lora_adapters adapters = load_lora_adapters(adapter_dir, &m.config);
  m.weights = fuse_lora(m.config, std::move(m.weights), adapters);
  return m;
}

}  // namespace mlxd::models
