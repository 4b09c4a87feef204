#include "frozen_reference.h"

#include <algorithm>

#include "mlxd/core/autograd.h"
#include "mlxd/models/llama_folder.h"
#include "reference_cache.h"

namespace mlxd::trainer {
namespace fs = std::filesystem;

frozen_reference::frozen_reference(const train_config& c, const fs::path& dir, const shared_weights& shared)
    : dir_(dir), config_(models::load_llama_config(dir)) {
  if (c.lora && shared.base && dir == c.model.from) {
    weights_ = shared.base;  // the base without its adapters
  } else {
    owned_ = std::make_unique<std::map<std::string, array>>(models::load_llama_folder_weights(dir, config_));
    weights_ = owned_.get();
  }
}

array frozen_reference::logits(const models::train_batch& batch) const {
  autograd::no_grad frozen;
  return models::training_logits(config_, *weights_, batch);
}

std::vector<fs::path> frozen_reference::files() const {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  files.insert(files.begin(), dir_ / "config.json");
  return files;
}

const std::string& frozen_reference::hash() const {
  if (hash_.empty()) hash_ = content_hash(files(), "");
  return hash_;
}

nlohmann::json frozen_reference::state_json() const {
  return {{"dir", dir_.string()}, {"hash", hash()}};
}

void frozen_reference::check_state(const nlohmann::json& state) const {
  if (!state.is_object() || !state.contains("hash") || !state["hash"].is_string())
    throw config_error("the checkpoint does not name its reference model; it was written by another task");
  if (state["hash"].get<std::string>() != hash())
    throw config_error(
        "the reference model " + dir_.string() + " is not the one the checkpoint was trained against (" +
        state.value("dir", std::string("?")) + "); resume with that reference or start a new run");
}

}  // namespace mlxd::trainer
