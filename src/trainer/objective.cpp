#include "objective.h"

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "objectives.h"

namespace mlxd::trainer {

std::unique_ptr<objective> make_objective(const train_config& c, data::source_options source,
                                          const data::sample_encoder& encoder, const shared_weights& shared,
                                          int rank) {
  if (c.task == "dpo") return make_dpo_objective(c, std::move(source), encoder, shared, rank);
  if (c.task == "reward") return make_reward_objective(c, std::move(source), encoder);
  if (c.task == "grpo") return make_grpo_objective(c, std::move(source), encoder, shared);
  if (c.task == "ppo") return make_ppo_objective(c, std::move(source), encoder, shared);
  return make_lm_objective(c, std::move(source), encoder);
}

void objective::restore_all(const std::vector<data::cursor>& c) {
  if (c.size() != 1) {
    throw config_error("the checkpoint holds " + std::to_string(c.size()) +
                       " data streams a rank and this run reads one: resume with the same data.row_streams");
  }
  restore(c[0]);
}

std::vector<std::pair<std::string, array>> task_params(const train_config& c, const models::llama_config& m) {
  // The value head starts at 0, so the first values are 0 and its first gradients are the returns'.
  if (c.task == "ppo")
    return {{value_weight_name, zeros({1, m.hidden_size}, dtype::f32)},
            {value_bias_name, zeros({1}, dtype::f32)}};
  if (c.task != "reward") return {};
  // Hugging Face draws the score head from N(0, initializer_range = 0.02).
  return {{reward_head_name, random::normal({c.model.seed, 0x73636f7265}, {1, m.hidden_size}, 0.0f, 0.02f)}};
}

bool task_param_is_saved(const std::string& name) {
  return name == reward_head_name;
}

}  // namespace mlxd::trainer
