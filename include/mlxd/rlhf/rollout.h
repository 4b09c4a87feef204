// Rollouts for GRPO and PPO: G sampled completions of each prompt from the policy's current weights, with the
// log-probability of every generated token as the old log-probs of the ratio.
//
// Generation runs on the inference path (models::llama_model over per-sequence KV caches): each prompt is
// prefilled once and its cache copied for its G samples, then every unfinished sequence advances one token
// per forward_batch step. The result matches models::training_logits on the same weights to float rounding.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/engine/sampler.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::rlhf {

struct rollout_options {
  int group_size = 1;       // G: completions per prompt (>= 1)
  int max_new_tokens = 64;  // a completion ends after this many tokens (>= 1) unless a stop id ends it first
  std::vector<int32_t> stop_ids;  // e.g. the tokenizer's EOS ids; the stop token is kept in the completion
  // Temperature, top-k/p, min-p, penalties (over the completion's own tokens, as the server), logit bias and
  // seed; top_logprobs is ignored. Each sequence samples with its own seed derived from (seed, global prompt
  // index, member index), so a group's members draw differently, the same seed gives the same completions,
  // and pass a new seed each training step to draw new ones.
  engine::sampling_params sampling;
  // The global index of prompts[0]: a batch split over several calls (or ranks) with first_prompt_index set
  // to each part's offset samples exactly what one call on the whole batch samples.
  int64_t first_prompt_index = 0;
  // When not empty, prompt p's index for its seeds is prompt_ids[p] instead (one per prompt): an identity of
  // the prompt such as its file and line, so that ranks holding any share of the prompts sample what one
  // process sampling all of them does.
  std::vector<int64_t> prompt_ids;
};

struct rollout {
  int prompt_index = 0;      // index into the `prompts` of the call (not offset by first_prompt_index)
  int member = 0;            // 0..G-1 within its group
  std::vector<int32_t> ids;  // generated ids; the stop id, when one ended it, is the last
  // logprobs[i] = log softmax(z_i)[ids[i]] where z_i are the model's raw logits at that step: the policy's
  // own distribution at temperature 1, before logit bias, penalties, temperature, top-k/p and min-p. This
  // is what sequence_logprobs computes teacher-forced, so it serves as GRPO/PPO's old log-probs (with no
  // sampling filters it is also the probability the token was drawn with at temperature 1).
  std::vector<float> logprobs;
  bool stopped = false;  // true: ended by a stop id; false: reached max_new_tokens
};

// Samples options.group_size completions for each prompt with the model built from `weights` (HF names:
// f32/f16/bf16 training parameters, a LoRA-fused map or quantized weights; see models::llama_model). Returns
// P * G rollouts grouped by prompt: index p * G + g is member g of prompt p, the layout group_advantages
// expects. Throws std::invalid_argument naming the problem for an empty prompt, a token or stop id outside
// the vocabulary, options out of range, or a prompt plus max_new_tokens beyond max_position_embeddings.
std::vector<rollout> generate_rollouts(const models::llama_config& config,
                                       const std::map<std::string, array>& weights,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const rollout_options& options);
// The same with a model already built (it must hold the whole model, not a pipeline stage).
std::vector<rollout> generate_rollouts(const models::llama_model& model,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const rollout_options& options);

}  // namespace mlxd::rlhf
