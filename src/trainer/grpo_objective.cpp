#include <algorithm>
#include <cmath>
#include <memory>

#include "frozen_reference.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/rlhf/grpo.h"
#include "mlxd/rlhf/kl.h"
#include "mlxd/rlhf/logprobs.h"
#include "mlxd/rlhf/ppo.h"
#include "mlxd/rlhf/rollout_batch.h"
#include "objectives.h"
#include "rollout_source.h"

namespace mlxd::trainer {
namespace {

// GRPO: for each prompt record, grpo.group_size completions sampled from the policy's current weights on the
// inference path, scored by the configured reward, with advantages relative to their group; the clipped ratio
// loss (plus a k3 penalty toward the reference when kl_beta > 0) summed over completion tokens, so the step
// divides by the completion tokens of all micro-batches and ranks.
class grpo_objective final : public objective {
 public:
  grpo_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder,
                 const shared_weights& shared)
      : cfg_(c), rollouts_(c, c.grpo.rollout, "grpo", std::move(source), encoder) {
    options_.clip_low = c.grpo.clip_low;
    options_.clip_high = c.grpo.clip_high;
    options_.beta = c.grpo.kl_beta;
    if (c.grpo.kl_beta > 0)
      reference_ = std::make_unique<frozen_reference>(c, c.grpo.rollout.reference, shared);
  }

  std::optional<micro_batch> next(const policy_view& policy) override {
    const int64_t g = cfg_.grpo.group_size;
    std::optional<scored_rollouts> s = rollouts_.next(policy, cfg_.data.batch_size, static_cast<int>(g));
    if (!s) return std::nullopt;
    std::vector<float> rf(s->rewards.begin(), s->rewards.end());
    const array reward_array = array::from(rf, {static_cast<int64_t>(rf.size())});
    const rlhf::group_advantages_result adv =
        cfg_.grpo.advantage == "rloo"
            ? rlhf::rloo_advantages(reward_array, g)
            : rlhf::group_advantages(reward_array, g, 1e-4, cfg_.grpo.advantage == "grpo");
    double reward_sum = 0;
    for (double r : s->rewards)
      if (std::isfinite(r)) reward_sum += r;

    const rlhf::rollout_batch b = rlhf::pack_rollouts(s->prompts, s->rollouts);
    array ref;
    if (reference_) ref = rlhf::sequence_logprobs(reference_->logits(b.inputs), b.labels, b.mask).tokens;
    micro_batch m;
    m.units = 0;
    for (float v : b.mask.to_vector<float>()) m.units += v;
    m.tokens = s->completion_tokens;
    const std::vector<double> fixed = {
        reward_sum, static_cast<double>(s->rollouts.size()), static_cast<double>(s->completion_tokens),
        static_cast<double>(adv.zero_std_groups), static_cast<double>(adv.groups)};
    m.loss_sum = [forward = policy.forward, b, ref, a = adv.advantages, o = options_, fixed](
                     const std::vector<array>& p, std::vector<double>& stats) {
      const array logits = forward(p, b.inputs, false);
      const array logp = rlhf::sequence_logprobs(logits, b.labels, b.mask).tokens;
      // A global count of 1 makes the loss the sum over this batch's tokens; the trainer divides.
      const rlhf::grpo_result r = rlhf::grpo_loss(logp, b.old_logprobs, ref, a, b.mask, 1.0, o);
      for (size_t i = 0; i < fixed.size(); ++i) stats[i] += fixed[i];
      stats[5] += r.kl_sum;
      stats[6] += static_cast<double>(r.clipped_low + r.clipped_high);
      {
        autograd::no_grad metric;
        stats[7] += sum(rlhf::entropy_from_logits(logits, b.mask)).item<float>();
      }
      stats[8] = std::min(stats[8], r.ratio_min);
      stats[9] = std::max(stats[9], r.ratio_max);
      if (ref.size()) {
        autograd::no_grad metric;
        stats[10] += sum(rlhf::kl_k1(logp, ref)).item<float>();  // 0 at masked positions: both are 0 there
      }
      return r.loss;
    };
    return m;
  }

  data::cursor position() const override { return rollouts_.position(); }
  void restore(const data::cursor& c) override { rollouts_.restore(c); }
  const char* unit_name() const override { return "completion tokens"; }
  std::vector<stat_spec> stats() const override {
    using reduce = stat_spec::reduce;
    return {{"reward", 1},
            {"completions", -1, true},
            {"completion_length", 1},
            {"zero_std_fraction", 4},
            {"groups", -1, true},
            {"kl", -1},
            {"clip_fraction", -1},
            {"entropy", -1},
            {"ratio_min", -1, false, reduce::min},
            {"ratio_max", -1, false, reduce::max},
            {"kl_k1", -1}};
  }
  nlohmann::json state() const override {
    return reference_ ? nlohmann::json{{"reference", reference_->state_json()}} : nlohmann::json(nullptr);
  }
  void restore_state(const nlohmann::json& state) override {
    if (reference_)
      reference_->check_state(state.is_object() ? state.value("reference", nlohmann::json()) : state);
  }

 private:
  const train_config& cfg_;
  rollout_source rollouts_;
  rlhf::grpo_options options_;
  std::unique_ptr<frozen_reference> reference_;  // with kl_beta > 0
};

}  // namespace

std::unique_ptr<objective> make_grpo_objective(const train_config& c, data::source_options source,
                                               const data::sample_encoder& encoder,
                                               const shared_weights& shared) {
  return std::make_unique<grpo_objective>(c, std::move(source), encoder, shared);
}

}  // namespace mlxd::trainer
