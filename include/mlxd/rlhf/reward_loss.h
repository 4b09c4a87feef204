// The Bradley-Terry loss of a reward model on preference pairs.
#pragma once

#include <cstdint>

#include "mlxd/core/array.h"

namespace mlxd::rlhf {

struct reward_loss_options {
  // c in c * (r_c + r_r)^2 per pair (TRL's center_rewards_coefficient): keeps rewards centred on 0. >= 0.
  double center_coefficient = 0;
};

struct reward_loss_result {
  array losses;         // f32 [N]: -log sigmoid(r_c - r_r - margin) + c (r_c + r_r)^2 per pair
  array loss;           // f32 scalar: the mean of `losses` (0 when N == 0)
  int64_t correct = 0;  // pairs with r_c > r_r (a tie is not correct)
  int64_t pairs = 0;    // N
  double accuracy = 0;  // correct / max(N, 1)
};

// chosen and rejected: the scalar rewards [N] of each pair (any float dtype); margin: [N] (or an empty array
// for none), how much the chosen reward must exceed the rejected one. Written with log_sigmoid, so finite for
// any finite difference, and exactly 0 (with gradient 0) as the difference goes to +inf. Differentiable in
// chosen, rejected and margin. Throws std::invalid_argument for mismatched shapes or a bad coefficient.
reward_loss_result reward_loss(const array& chosen, const array& rejected, const array& margin = array(),
                               const reward_loss_options& options = {});

}  // namespace mlxd::rlhf
