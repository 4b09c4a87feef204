#include "mlxd/rlhf/rollout_batch.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace mlxd::rlhf {

rollout_batch pack_rollouts(const std::vector<std::vector<int32_t>>& prompts,
                            std::span<const rollout> rollouts) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("[pack_rollouts] " + what); };
  if (rollouts.empty()) bad("no rollouts to pack");
  int64_t width = 1;
  for (size_t b = 0; b < rollouts.size(); ++b) {
    const rollout& r = rollouts[b];
    const std::string name = "rollout " + std::to_string(b);
    if (r.prompt_index < 0 || static_cast<size_t>(r.prompt_index) >= prompts.size()) {
      bad(name + " names prompt " + std::to_string(r.prompt_index) + " of " + std::to_string(prompts.size()));
    }
    if (prompts[r.prompt_index].empty()) bad(name + " has an empty prompt");
    if (r.logprobs.size() != r.ids.size()) {
      bad(name + " has " + std::to_string(r.logprobs.size()) + " logprobs for " +
          std::to_string(r.ids.size()) + " tokens");
    }
    width = std::max<int64_t>(width, static_cast<int64_t>(prompts[r.prompt_index].size() + r.ids.size()) - 1);
  }
  const auto n = static_cast<int64_t>(rollouts.size());
  std::vector<int32_t> tokens(n * width, 0), labels(n * width, 0), segments(n * width, 1);
  std::vector<float> mask(n * width, 0.0f), old(n * width, 0.0f);
  for (int64_t b = 0; b < n; ++b) {
    const rollout& r = rollouts[b];
    std::vector<int32_t> row = prompts[r.prompt_index];  // prompt + completion
    const auto n_prompt = static_cast<int64_t>(row.size());
    row.insert(row.end(), r.ids.begin(), r.ids.end());
    // Position t reads row[t] and predicts row[t + 1]; it counts when row[t + 1] is generated.
    for (int64_t t = 0; t + 1 < static_cast<int64_t>(row.size()); ++t) {
      const int64_t i = b * width + t;
      tokens[i] = row[t];
      labels[i] = row[t + 1];
      segments[i] = 0;
      if (t + 1 >= n_prompt) {
        mask[i] = 1.0f;
        old[i] = r.logprobs[t + 1 - n_prompt];
      }
    }
  }
  const shape_t shape{n, width};
  return rollout_batch{models::make_train_batch(array::from(tokens, shape), array::from(segments, shape)),
                       array::from(labels, shape), array::from(mask, shape), array::from(old, shape)};
}

}  // namespace mlxd::rlhf
