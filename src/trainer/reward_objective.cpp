#include <algorithm>

#include "mlxd/core/ops.h"
#include "mlxd/rlhf/masked.h"
#include "mlxd/rlhf/reward_loss.h"
#include "objectives.h"
#include "pair_objective.h"

namespace mlxd::trainer {
namespace {

// A reward model: the backbone's final hidden state at each row's last token times a [1, hidden] head
// (Hugging Face's LlamaForSequenceClassification "score"), trained with the Bradley-Terry loss.
class reward_objective final : public pair_objective {
 public:
  reward_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder)
      : pair_objective(c, std::move(source), encoder) {}

  std::optional<micro_batch> next(const policy_view& policy) override {
    const std::optional<pair_batch> next = next_pairs();
    if (!next) return std::nullopt;
    const pair_batch& b = *next;
    const auto& names = policy.param_names;
    const auto head =
        static_cast<size_t>(std::find(names.begin(), names.end(), reward_head_name) - names.begin());
    if (head == names.size())
      throw std::logic_error("the reward model has no " + std::string(reward_head_name));
    micro_batch m;
    m.units = static_cast<double>(b.pairs);
    m.tokens = b.tokens;
    m.loss_sum = [forward = policy.forward, b, head,
                  o = rlhf::reward_loss_options{cfg_.reward.center_coefficient}](const std::vector<array>& p,
                                                                                 std::vector<double>& stats) {
      const array rewards = reward_scores(forward(p, b.inputs, true), b.inputs.segments, p[head]);
      const array chosen = slice_axis(rewards, 0, 0, b.pairs);
      const array rejected = slice_axis(rewards, 0, b.pairs, 2 * b.pairs);
      const rlhf::reward_loss_result r = rlhf::reward_loss(chosen, rejected, b.margins, o);
      stats[0] += static_cast<double>(r.correct);
      stats[1] += sum(chosen).item<float>();
      stats[2] += sum(rejected).item<float>();
      return sum(r.losses);
    };
    return m;
  }

  std::vector<stat_spec> stats() const override {
    return {{"accuracy"}, {"chosen_reward"}, {"rejected_reward"}};
  }
};

}  // namespace

array reward_scores(const array& hidden, const array& segments, const array& head) {
  const array last = rlhf::last_valid(hidden, segments);  // [B, hidden]
  return reshape(matmul(last, transpose(astype(head, dtype::f32))), {hidden.shape(0)});
}

std::unique_ptr<objective> make_reward_objective(const train_config& c, data::source_options source,
                                                 const data::sample_encoder& encoder) {
  return std::make_unique<reward_objective>(c, std::move(source), encoder);
}

}  // namespace mlxd::trainer
