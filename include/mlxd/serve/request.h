// The body of an OpenAI chat or text completion request, parsed and validated. Every malformed, mistyped or
// out-of-range field is an api_error 400 naming the field; unknown fields are ignored, as OpenAI does.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "mlxd/engine/sampler.h"

namespace mlxd::serve {

// What both endpoints share.
struct generation_params {
  int max_tokens = 0;  // 0: up to the end of the context
  mlxd::engine::sampling_params sampling;
  bool seed_given = false;
  std::vector<std::string> stop;  // stop strings: generation ends before them; they never appear in the text
  int n = 1;                      // choices per prompt
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // report the chosen tokens' logprobs (sampling.top_logprobs alternatives)
};

struct chat_request {
  std::string model;                // empty: the served model
  nlohmann::ordered_json messages;  // [{"role", "content" (text), ...}], content parts joined into one string
  generation_params params;
};

// One prompt of a text completion: text, or token ids.
struct prompt_input {
  std::string text;
  std::vector<int32_t> ids;
  bool is_ids = false;
};

struct completion_request {
  std::string model;
  std::vector<prompt_input>
      prompts;  // "prompt": a string, a list of strings, a list of ids or a list of lists
  generation_params params;
};

// Parses a JSON body. Throws api_error 400 for invalid JSON (including invalid UTF-8 and nesting deeper than
// max_json_depth) and invalid fields.
nlohmann::json parse_json_body(std::string_view body);
constexpr int max_json_depth = 64;
chat_request parse_chat_request(std::string_view body);
completion_request parse_completion_request(std::string_view body);

// POST /v1/embeddings.
struct embeddings_request {
  std::string model;
  std::vector<prompt_input> inputs;  // "input": a string, a list of strings, a list of ids or a list of lists
  bool base64 = false;               // encoding_format "base64" (little-endian float32 bytes), else "float"
  int64_t dimensions = 0;            // 0: not given (any other value must equal the model's hidden size)
};
constexpr int max_embedding_inputs = 2048;  // OpenAI's limit
embeddings_request parse_embeddings_request(std::string_view body);

// Most choices (n) and prompts one request may ask for.
constexpr int max_choices = 16;
constexpr int max_prompts = 16;

}  // namespace mlxd::serve
