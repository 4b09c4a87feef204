// OpenAI's response bodies: chat completions ("chat.completion", "chat.completion.chunk"), text completions
// ("text_completion"), usage, logprobs and the model list.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mlxd/engine/sampler.h"
#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd::serve {

enum class api_kind { chat, completion };

// Identity of one response: the same id and created in every chunk of a stream.
struct response_meta {
  api_kind kind = api_kind::chat;
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
};
// A fresh id with the prefix of `kind` and the current time.
response_meta new_response_meta(api_kind kind, const std::string& model);

// A finished choice.
struct choice_result {
  std::string text;
  std::string finish_reason;
  std::vector<mlxd::engine::sample_result> tokens;
};

struct usage_counts {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};
nlohmann::json usage_json(const usage_counts& u);

// The logprobs object of `tokens` in the shape of `kind` (chat: {"content": [...]}; text completion: the
// legacy
// {"tokens", "token_logprobs", "top_logprobs", "text_offset"}); each token spelled by decoding it alone.
nlohmann::json logprobs_json(api_kind kind, const tokenizer& tok,
                             const std::vector<mlxd::engine::sample_result>& tokens, bool with_top);

// The whole non-streaming response. `logprobs`: include them; `with_top`: with alternatives.
nlohmann::json completion_json(const response_meta& meta, const tokenizer& tok,
                               const std::vector<choice_result>& choices, const usage_counts& usage,
                               bool logprobs, bool with_top);

// One streaming chunk for choice `index`: chat chunks carry `delta` ({"role": "assistant"} first, then
// {"content": text}); text completion chunks carry `text`. `finish_reason` empty: null. `logprobs` null:
// none.
nlohmann::json chunk_json(const response_meta& meta, int index, const nlohmann::json& delta_or_text,
                          const std::string& finish_reason, const nlohmann::json& logprobs = nullptr);
// The final usage chunk (stream_options.include_usage): empty choices.
nlohmann::json usage_chunk_json(const response_meta& meta, const usage_counts& usage);

// GET /v1/models.
nlohmann::json models_json(const std::string& model, int64_t created, int context_length);

// Serializes JSON for the wire: invalid UTF-8 (from a token that is part of a character) becomes U+FFFD.
std::string dump(const nlohmann::json& j);

}  // namespace mlxd::serve
