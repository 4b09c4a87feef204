// A multi-turn conversation with one model on this node: the loop behind `mlxd chat`.
//
// Each turn appends the user's message, renders the whole conversation with the tokenizer's chat template,
// and generates the assistant's reply. The KV cache is kept between turns: the rendered prompt is compared
// with the token ids already in the cache and only the tokens after their common prefix are prefilled, so a
// conversation that grows by appending costs one prefill of the new text per turn. A reply is the tokens
// `mlxd generate --tokens <rendered prompt> --seed S` would give: each turn samples with a fresh sampler of
// the same parameters (draw i of seed S), penalties counting only the reply's own tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "mlxd/engine/sampler.h"
#include "mlxd/models/llama.h"
#include "mlxd/tokenizer/chat_template.h"
#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd::engine {

struct chat_options {
  std::string system;             // a system message before the first turn; empty: none
  int max_tokens = 256;           // most tokens of one reply
  int context = 0;                // KV cache positions; 0 = min(max_position_embeddings, 4096)
  sampling_params sampling;       // as for generate (temperature 0 = greedy)
  std::vector<int32_t> stop_ids;  // further ids that end a reply (as generate's --stop-ids)
  dtype kv_dtype = dtype::f32;    // what the KV cache stores: f32, or f16 (half the memory)
  bool ignore_eos = false;        // true: the tokenizer's EOS ids do not end a reply
};

struct chat_turn {
  std::string text;             // the reply (special tokens skipped)
  std::vector<int32_t> tokens;  // the sampled ids, the stop id included when one ended the reply
  int prompt_tokens = 0;        // tokens of the rendered conversation
  int reused_tokens = 0;        // of those, already in the KV cache from earlier turns (not prefilled)
  bool context_full = false;    // the reply was cut short because the KV cache was full
};

class chat_session {
 public:
  // Throws std::invalid_argument when the tokenizer has no chat template, the options are out of range
  // (max_tokens < 1, context outside [2, max_position_embeddings], kv_dtype not f32 or f16) or the sampling
  // parameters are invalid. `model` must outlive the session.
  chat_session(const models::llama_model& model, tokenizer tok, chat_options options);

  // Adds `user` as the next user message and generates the reply, handing each piece of text (whole UTF-8
  // characters) to `on_text` as it is produced. The reply joins the conversation. Throws
  // std::invalid_argument, leaving the conversation as it was, when the rendered conversation does not leave
  // room for one new token in the context (start over with reset()).
  chat_turn reply(const std::string& user, const std::function<void(std::string_view)>& on_text = {});

  // Forgets the conversation (the system message stays) and empties the KV cache.
  void reset();

  // The messages so far, [{"role", "content"}, ...], the system message first when there is one.
  const nlohmann::ordered_json& messages() const { return messages_; }
  // The token ids whose keys and values the cache holds.
  const std::vector<int32_t>& cached_tokens() const { return cached_; }

 private:
  const models::llama_model& model_;
  tokenizer tok_;
  chat_options options_;
  std::vector<int32_t> stops_;
  nlohmann::ordered_json messages_;
  models::kv_cache cache_;
  std::vector<int32_t> cached_;  // ids at cache positions 0..cache_.length()-1
};

}  // namespace mlxd::engine
