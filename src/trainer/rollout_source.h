// What GRPO and PPO train on: prompts read from this rank's records, completions sampled from the policy's
// current weights on the inference path, and the configured reward of each. Internal to the trainer module.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mlxd/rlhf/rewards.h"
#include "mlxd/rlhf/rollout.h"
#include "mlxd/trainer/reward_model.h"
#include "objective.h"

namespace mlxd::trainer {

struct scored_rollouts {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<rlhf::rollout> rollouts;  // group_size per prompt, grouped by prompt
  std::vector<double> rewards;          // one per rollout; NaN when the reward gave none
  int64_t completion_tokens = 0;
};

class rollout_source {
 public:
  // `name` is the config section ("grpo", "ppo") for messages.
  rollout_source(const train_config& c, const rollout_settings& s, std::string name,
                 data::source_options source, const data::sample_encoder& encoder);

  // The next n_prompts prompts (fewer at the end of a validation pass; nullopt when none is left; read by
  // data::sample_encoder::encode_prompt: lines, {"prompt"} or chat {"messages"}) with group_size
  // completions each. The seed comes from (data.seed, step, epoch) and each prompt's file and line, so a
  // micro-batch split, a resumed run and any number of ranks sample the same completions.
  std::optional<scored_rollouts> next(const policy_view& policy, int64_t n_prompts, int group_size);

  data::cursor position() const { return source_.position(); }
  void restore(const data::cursor& c) { source_.restore(c); }

 private:
  std::vector<double> score(const scored_rollouts& s, const std::vector<std::string>& texts) const;

  const train_config& cfg_;
  const rollout_settings& settings_;
  std::string name_;
  data::record_source source_;
  const data::sample_encoder& encoder_;
  std::unique_ptr<rlhf::reward_function> reward_;  // or
  std::unique_ptr<reward_model> reward_model_;
};

}  // namespace mlxd::trainer
