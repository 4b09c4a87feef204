// The objectives of each task (see objective.h). Internal to the trainer module.
#pragma once

#include "objective.h"

namespace mlxd::trainer {

std::unique_ptr<objective> make_lm_objective(const train_config& c, data::source_options source,
                                             const data::sample_encoder& encoder);
std::unique_ptr<objective> make_dpo_objective(const train_config& c, data::source_options source,
                                              const data::sample_encoder& encoder,
                                              const shared_weights& shared, int rank);
// The reward head's tensor (Hugging Face's LlamaForSequenceClassification) and the scores [B] it gives the
// final hidden states [B, T, H] at each row's last token with a nonzero segment id.
inline constexpr const char* reward_head_name = "score.weight";
array reward_scores(const array& hidden, const array& segments, const array& head);

std::unique_ptr<objective> make_grpo_objective(const train_config& c, data::source_options source,
                                               const data::sample_encoder& encoder,
                                               const shared_weights& shared);
// PPO's value head on the final hidden states: value = hidden . weight + bias, per position.
inline constexpr const char* value_weight_name = "value_head.weight";
inline constexpr const char* value_bias_name = "value_head.bias";
std::unique_ptr<objective> make_ppo_objective(const train_config& c, data::source_options source,
                                              const data::sample_encoder& encoder,
                                              const shared_weights& shared);
std::unique_ptr<objective> make_reward_objective(const train_config& c, data::source_options source,
                                                 const data::sample_encoder& encoder);

}  // namespace mlxd::trainer
