#include "mlxd/models/llama_folder.h"

#include <fstream>

#include "mlxd/io/io_error.h"
#include "mlxd/io/safetensors.h"

namespace mlxd::models {

namespace fs = std::filesystem;

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
