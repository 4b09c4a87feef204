// Group Relative Policy Optimisation: advantages relative to the other completions of the same prompt, and
// the clipped ratio loss with a k3 KL penalty, summed over tokens and divided by a global token count.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"

namespace mlxd::rlhf {

struct group_advantages_result {
  array advantages;             // f32 [N], one per completion
  int64_t groups = 0;           // N / G
  int64_t zero_std_groups = 0;  // groups whose valid rewards are all equal, or fewer than two (advantages 0)
  int64_t excluded = 0;         // non-finite rewards (advantage 0, left out of their group's statistics)
};

// rewards [N] float, N = groups x G with the G completions of a prompt adjacent. GRPO: A = (R - mean) / (std
// + eps) over the group's finite rewards (std unbiased, as torch.std; with scale_by_std false, A = R - mean,
// Dr. GRPO). A group whose finite rewards are all equal (or number under two, as always with G = 1) gives 0.
// Computed in double; no gradient. Throws std::invalid_argument when G < 1, N is not a multiple of G, or eps
// < 0.
group_advantages_result group_advantages(const array& rewards, int64_t group_size, double eps = 1e-4,
                                         bool scale_by_std = true);
// RLOO: A_i = R_i - mean of the group's other finite rewards; with G = 2, A = +-(R_1 - R_2). Non-finite
// rewards and groups with fewer than two finite rewards as above.
group_advantages_result rloo_advantages(const array& rewards, int64_t group_size);

struct grpo_options {
  double clip_low = 0.2;   // ratio floor 1 - clip_low
  double clip_high = 0.2;  // ratio ceiling 1 + clip_high (DAPO's clip-higher raises it, e.g. 0.28)
  double beta = 0.0;       // k3 KL coefficient; 0 needs no reference log-probs
};

struct grpo_result {
  array loss;               // f32 scalar: sum over valid tokens / max(global_tokens, 1); differentiable
  array token_losses;       // f32 [B, T], 0 at masked positions
  int64_t tokens = 0;       // valid tokens of this batch
  int64_t clipped_low = 0;  // see policy_loss_result
  int64_t clipped_high = 0;
  double ratio_min = 0, ratio_max = 0;  // over valid tokens (+inf / -inf when none)
  double kl_sum = 0;                    // sum of k3 over valid tokens (0 when beta is 0)
};

// logp, old_logp [B, T] (logp differentiable, old_logp from the rollout policy); ref_logp [B, T] (ignored and
// may be empty when beta is 0); advantages [B] (one per completion); mask [B, T]. Per token:
//   -min(r A, clip(r, 1 - clip_low, 1 + clip_high) A) + beta k3(logp, ref_logp),  r = exp(clamp(logp -
//   old_logp)).
// global_tokens is the number of valid tokens over every micro-batch and rank of the step, so the sum of the
// losses of the parts equals the loss of the whole. Throws std::invalid_argument for bad shapes or options.
grpo_result grpo_loss(const array& logp, const array& old_logp, const array& ref_logp,
                      const array& advantages, const array& mask, double global_tokens,
                      const grpo_options& options = {});

}  // namespace mlxd::rlhf
