// Prompts and their rollouts laid out for the training forward and the RLHF losses:
//
//   const rollout_batch b = pack_rollouts(prompts, rollouts);
//   const array logits = models::training_logits(config, params, b.inputs);   // [B, T, V]
//   const token_logprobs lp = sequence_logprobs(logits, b.labels, b.mask);    // lp.tokens [B, T]
//   grpo_loss(lp.tokens, b.old_logprobs, ref_logp, advantages, b.mask, global_tokens, options);
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/models/llama_train.h"
#include "mlxd/rlhf/rollout.h"

namespace mlxd::rlhf {

struct rollout_batch {
  // [B, T], one unpacked row per rollout: the prompt then the completion without its last token, then
  // padding (token 0 in a segment of its own). T = the longest prompt + completion - 1 (at least 1).
  models::train_batch inputs;
  array labels;        // i32 [B, T]: labels[b, t] is the token after position t (0 at padding)
  array mask;          // f32 [B, T]: 1 where labels[b, t] is a completion token; prompt and padding are 0
  array old_logprobs;  // f32 [B, T]: the rollout's logprobs where mask is 1, 0 elsewhere
};

// Row b is rollouts[b] after prompts[rollouts[b].prompt_index]. Any subset of a call's rollouts may be packed
// (a micro-batch). A completion with no tokens gives a row with no mask. Throws std::invalid_argument for an
// empty `rollouts`, an empty prompt, a prompt_index outside `prompts`, or logprobs of the wrong length.
rollout_batch pack_rollouts(const std::vector<std::vector<int32_t>>& prompts,
                            std::span<const rollout> rollouts);

}  // namespace mlxd::rlhf
