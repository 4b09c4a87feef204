// The pieces of PPO for language models: generalised advantage estimation over token rewards, the clipped
// surrogate policy loss, the clipped value loss and the entropy of the policy.
//
// Token arrays are [B, T] with a mask of the same shape (nonzero = a completion token). Losses are returned
// per token (0 at masked positions) and reduced with masked_mean or token_mean (masked.h); metrics are sums
// and counts so micro-batches and ranks can add them before dividing.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"

namespace mlxd::rlhf {

struct gae_result {
  array advantages;  // f32 [B, T], 0 at masked positions
  array returns;     // f32 [B, T]: advantages + values, 0 at masked positions
};

// GAE(gamma, lambda) along each row over its valid tokens only: masked positions are skipped (the next
// valid token is the next step) and the episode ends after the last valid token (its next value is 0):
//   delta_t = r_t + gamma V_next - V_t,  A_t = delta_t + gamma lambda A_next.
// With gamma = lambda = 1, A_t = (sum of rewards from t on) - V_t. Computed in double; no gradient. Throws
// std::invalid_argument for bad shapes, gamma or lambda outside [0, 1], or non-finite valid values.
gae_result gae(const array& rewards, const array& values, const array& mask, double gamma, double lambda);

struct policy_loss_result {
  array losses;              // f32 [B, T]: max(-A r, -A clip(r, 1 - e, 1 + e)), 0 at masked positions
  int64_t clipped_low = 0;   // valid tokens with r < 1 - clip_low and A < 0 (clipped: no gradient)
  int64_t clipped_high = 0;  // valid tokens with r > 1 + clip_high and A > 0 (clipped: no gradient)
  int64_t tokens = 0;        // valid tokens
  double ratio_min = 0;      // over valid tokens (+inf / -inf when there is none)
  double ratio_max = 0;
};

// The clipped surrogate of Schulman et al. with r = exp(clamp(logp - old_logp, -20, 20)). logp [B, T] is
// differentiable; old_logp and advantages are constants. clip_low / clip_high are e below and above 1 (the
// usual symmetric PPO has both 0.2; GRPO's "clip-higher" raises clip_high). Throws std::invalid_argument for
// bad shapes or clip ranges (clip_low in [0, 1), clip_high >= 0).
policy_loss_result clipped_policy_loss(const array& logp, const array& old_logp, const array& advantages,
                                       const array& mask, double clip_low, double clip_high);

struct value_loss_result {
  array losses;         // f32 [B, T]: 0.5 max((v - R)^2, (v_clip - R)^2), 0 at masked positions
  int64_t clipped = 0;  // valid tokens where the clipped error was the larger
  int64_t tokens = 0;
};

// v_clip = old_values + clamp(values - old_values, -clip, clip). values is differentiable; old_values and
// returns are constants. clip >= 0.
value_loss_result clipped_value_loss(const array& values, const array& old_values, const array& returns,
                                     const array& mask, double clip);

// The entropy of softmax(logits) per position: logits [B, T, V] any float dtype, mask [B, T]; f32 [B, T] in
// nats, 0 at masked positions. -inf logits (a banned token) contribute 0, not NaN, to the value and the
// gradient. Differentiable in logits.
array entropy_from_logits(const array& logits, const array& mask);

}  // namespace mlxd::rlhf
