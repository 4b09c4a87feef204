// A trained reward model read back from its folder (what `mlxd rlhf reward` writes: a Llama-family
// backbone with a [1, hidden] "score" head, config architectures "...ForSequenceClassification"), scoring
// token sequences by the head at their last token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::trainer {

class reward_model {
 public:
  // Throws io_error or std::invalid_argument when the folder is not a reward model (no score head, or
  // num_labels other than 1) or its weights do not fit its config.
  explicit reward_model(const std::filesystem::path& dir);

  // One score per sequence (each at least one token long; they may differ in length).
  std::vector<float> score(const std::vector<std::vector<int32_t>>& sequences) const;

  const models::llama_config& config() const { return config_; }

 private:
  models::llama_config config_;
  std::map<std::string, array> weights_;
};

}  // namespace mlxd::trainer
