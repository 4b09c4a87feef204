// The trainable Llama-family forward: a batch of token rows, each possibly packing several samples, through
// the decoder with every weight an ordinary array that value_and_grad can differentiate.
//
// Packing: segment ids mark the samples of a row. A token attends only to earlier tokens (causally) of its
// own segment, and its RoPE position is its index within that segment, so a packed row computes exactly what
// its samples would compute one by one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::models {

struct train_batch {
  array tokens;     // [batch, seq] i32 token ids
  array segments;   // [batch, seq] i32: tokens attend only within their segment id (padding: its own id)
  array positions;  // [batch, seq] i32 RoPE positions, 0 at the start of each segment
};
// A batch from token rows and their segment ids ([batch, seq] integer arrays); positions count from 0 at
// each change of segment id along a row. Throws std::invalid_argument for mismatched or non-2-d shapes.
train_batch make_train_batch(const array& tokens, const array& segments);
// One unpacked row per sample, all of the same length: segment 0, positions 0.., tokens [batch, seq].
train_batch make_train_batch(const array& tokens);

// HF names of the trainable tensors of `config`, in a fixed order (lm_head.weight only when the embeddings
// are not tied; biases with attention_bias; q/k norms with qk_norm).
std::vector<std::string> llama_param_names(const llama_config& config);
// Pairs names with values (e.g. the arrays value_and_grad passes to its function).
std::map<std::string, array> bind_params(const std::vector<std::string>& names,
                                         const std::vector<array>& values);

// Logits [batch, seq, vocab] f32. `params` holds every name of llama_param_names as a float array (f32, f16
// or bf16; not block-quantized) with the HF shape. For one unpacked row this equals llama_model::forward on
// that row. Throws std::invalid_argument naming a missing or mis-shaped weight, a bad batch shape, or a token
// id outside the vocabulary.
array training_logits(const llama_config& config, const std::map<std::string, array>& params,
                      const train_batch& batch);

// Summed token-level cross-entropy and the number of tokens it sums over, so a trainer can divide by the
// token count summed across micro-batches and ranks. logits [..., vocab], labels [...] integer; a label equal
// to ignore_index adds nothing to either.
struct token_loss {
  array sum;         // f32 scalar
  int64_t n_tokens;  // labels != ignore_index
};
token_loss masked_cross_entropy(const array& logits, const array& labels, int64_t ignore_index = -100);

}  // namespace mlxd::models
