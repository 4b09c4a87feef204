#include "mlxd/trainer/reward_model.h"

#include <algorithm>
#include <stdexcept>

#include "mlxd/core/autograd.h"
#include "mlxd/io/io_error.h"
#include "mlxd/models/llama_folder.h"
#include "mlxd/models/lora.h"
#include "objectives.h"

namespace mlxd::trainer {

reward_model::reward_model(const std::filesystem::path& dir)
    : config_(models::load_llama_config(dir)), weights_(models::load_llama_folder_weights(dir, config_)) {
  if (config_.num_labels != 1)
    throw std::invalid_argument(dir.string() +
                                " is not a reward model: its config.json needs architectures "
                                "\"...ForSequenceClassification\" with num_labels 1");
  auto it = weights_.find(reward_head_name);
  if (it == weights_.end() || it->second.shape() != shape_t{1, config_.hidden_size})
    throw io_error(dir.string() + ": a reward model needs a " + reward_head_name + " of shape [1, " +
                   std::to_string(config_.hidden_size) + "]");
}

std::vector<float> reward_model::score(const std::vector<std::vector<int32_t>>& sequences) const {
  if (sequences.empty()) return {};
  size_t width = 0;
  for (const auto& s : sequences) {
    if (s.empty()) throw std::invalid_argument("[reward_model] cannot score an empty sequence");
    width = std::max(width, s.size());
  }
  const auto rows = static_cast<int64_t>(sequences.size());
  std::vector<int32_t> tokens(sequences.size() * width, 0), segments(tokens.size(), 0);
  for (size_t r = 0; r < sequences.size(); ++r) {
    std::copy(sequences[r].begin(), sequences[r].end(), tokens.begin() + static_cast<ptrdiff_t>(r * width));
    std::fill_n(segments.begin() + static_cast<ptrdiff_t>(r * width), sequences[r].size(), 1);
  }
  const shape_t shape = {rows, static_cast<int64_t>(width)};
  const array seg = array::from(segments, shape);
  autograd::no_grad inference;
  const array hidden =
      models::training_hidden(config_, weights_, models::make_train_batch(array::from(tokens, shape), seg));
  return reward_scores(hidden, seg, weights_.at(reward_head_name)).to_vector<float>();
}

}  // namespace mlxd::trainer
