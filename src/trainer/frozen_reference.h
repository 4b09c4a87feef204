// The frozen reference policy of DPO and of GRPO's and PPO's KL terms: loaded from its folder once, or with
// LoRA the base weights shared when the reference is model.from. Internal to the trainer module.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/models/llama_config.h"
#include "mlxd/models/llama_train.h"
#include "objective.h"

namespace mlxd::trainer {

class frozen_reference {
 public:
  frozen_reference(const train_config& c, const std::filesystem::path& dir, const shared_weights& shared);

  // The reference's logits [B, T, V] for a batch, without a tape.
  array logits(const models::train_batch& batch) const;
  // config.json and the safetensors files, sorted: what identifies the reference's weights.
  std::vector<std::filesystem::path> files() const;
  // content_hash of files(), computed at the first call; checkpoints keep it so that a run resumed against
  // another reference is refused.
  const std::string& hash() const;
  const std::filesystem::path& dir() const { return dir_; }
  // Throws config_error unless `state` (from state_json) names this reference's hash.
  void check_state(const nlohmann::json& state) const;
  nlohmann::json state_json() const;

 private:
  std::filesystem::path dir_;
  models::llama_config config_;
  std::unique_ptr<std::map<std::string, array>> owned_;
  const std::map<std::string, array>* weights_ = nullptr;
  mutable std::string hash_;
};

}  // namespace mlxd::trainer
