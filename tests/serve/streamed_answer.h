// What the tests read from a streamed answer: the SSE events of post_stream() folded into one choice's text.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlxd::serve::testing {

// The text, finish reason and token count (from logprobs) of one choice of a streamed answer, every chunk
// parsed, whether it ended with [DONE], and an error event's message.
struct streamed {
  std::string text, finish_reason, error;
  std::vector<nlohmann::json> chunks;
  size_t n_tokens = 0;
  bool done = false;
};

// Folds the data of SSE events (as post_stream returns them) for choice `index`; throws
// nlohmann::json::parse_error for an event that is not JSON.
inline streamed collect(const std::vector<std::string>& events, int index = 0) {
  using json = nlohmann::json;
  streamed s;
  for (const auto& e : events) {
    if (e == "[DONE]") {
      s.done = true;
      continue;
    }
    const json j = json::parse(e);
    s.chunks.push_back(j);
    if (j.contains("error")) s.error = j["error"]["message"];
    for (const auto& c : j.value("choices", json::array())) {
      if (c["index"] != index) continue;
      if (c.contains("delta") && c["delta"].contains("content"))
        s.text += c["delta"]["content"].get<std::string>();
      if (c.contains("text")) s.text += c["text"].get<std::string>();
      if (!c["finish_reason"].is_null()) s.finish_reason = c["finish_reason"];
      if (c.contains("logprobs") && c["logprobs"].is_object() && c["logprobs"].contains("content"))
        s.n_tokens += c["logprobs"]["content"].size();
    }
  }
  return s;
}

}  // namespace mlxd::serve::testing
