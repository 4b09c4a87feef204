// Direct Preference Optimisation losses from summed completion log-probabilities.
//
// With h = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected), per pair:
//   sigmoid       -log sigmoid(beta h)                                    (Rafailov et al.)
//   conservative  -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h)   (cDPO: labels flipped with prob. e)
//   robust        (-(1 - e) log sigmoid(beta h) + e log sigmoid(-beta h)) / (1 - 2e)   (Chowdhury et al.)
//   hinge         max(0, 1 - beta h)                                      (SLiC)
//   ipo           (h - 1 / (2 beta))^2                                    (Azar et al.; minimum at h = 1/(2
//   beta))
// All written with log_sigmoid, so finite for any finite h and with a zero gradient as h -> +inf (sigmoid,
// conservative with e = 0, robust with e = 0, hinge).
#pragma once

#include <cstdint>
#include <string_view>

#include "mlxd/core/array.h"

namespace mlxd::rlhf {

enum class dpo_loss_type { sigmoid, conservative, robust, hinge, ipo };

// "sigmoid", "conservative", "robust", "hinge", "ipo"; throws std::invalid_argument listing them otherwise.
dpo_loss_type parse_dpo_loss_type(std::string_view name);
std::string_view name(dpo_loss_type t);

struct dpo_options {
  dpo_loss_type type = dpo_loss_type::sigmoid;
  double beta = 0.1;             // > 0
  double label_smoothing = 0.0;  // e: conservative [0, 0.5], robust [0, 0.5); must be 0 for the others
};

struct dpo_result {
  array losses;            // f32 [N], differentiable in the policy (and reference) log-probs
  array loss;              // f32 scalar: mean of losses (0 when N == 0)
  array chosen_rewards;    // f32 [N]: beta (policy_chosen - reference_chosen), no gradient
  array rejected_rewards;  // f32 [N]: beta (policy_rejected - reference_rejected), no gradient
  array margins;           // f32 [N]: chosen_rewards - rejected_rewards, no gradient
  int64_t correct = 0;     // pairs with chosen_rewards > rejected_rewards
  double accuracy = 0;     // correct / max(N, 1)
};

// Each argument: [N] float log-probabilities summed over the completion tokens of each pair (see
// sequence_logprobs; TRL gives IPO the mean per token instead, sums / counts). Throws std::invalid_argument
// for mismatched shapes or out-of-range options.
dpo_result dpo_loss(const array& policy_chosen, const array& policy_rejected, const array& reference_chosen,
                    const array& reference_rejected, const dpo_options& options = {});

}  // namespace mlxd::rlhf
