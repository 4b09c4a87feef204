#include "sequence_admission.h"

#include <algorithm>
#include <limits>
#include <string>

#include "mlxd/serve/api_error.h"

namespace mlxd::serve::detail {

void check_sequences(const std::vector<sequence_request>& sequences, int vocab, int context) {
  for (const auto& s : sequences) {
    if (s.prompt.empty()) throw bad_request("the prompt has no tokens", "prompt");
    for (int32_t id : s.prompt)
      if (id < 0 || id >= vocab)
        throw bad_request(
            "token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab),
            "prompt");
    if (s.max_tokens < 1) throw bad_request("max_tokens must be at least 1", "max_tokens");
    if (static_cast<int64_t>(s.prompt.size()) + s.max_tokens > context)
      throw api_error(400,
                      "This model's maximum context length is " + std::to_string(context) +
                          " tokens. However, you requested " +
                          std::to_string(s.prompt.size() + s.max_tokens) + " tokens (" +
                          std::to_string(s.prompt.size()) + " in the messages, " +
                          std::to_string(s.max_tokens) + " in the completion).",
                      "invalid_request_error", "messages", "context_length_exceeded");
    try {
      mlxd::engine::validate(s.sampling, vocab);
    } catch (const std::invalid_argument& e) {
      throw bad_request(e.what());
    }
  }
}

void check_embedding_inputs(const std::vector<std::vector<int32_t>>& inputs, int vocab, int context) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string at = "input[" + std::to_string(i) + "]";
    if (inputs[i].empty()) throw bad_request(at + " has no tokens", "input");
    for (int32_t id : inputs[i])
      if (id < 0 || id >= vocab)
        throw bad_request(at + ": token id " + std::to_string(id) + " is outside the vocabulary of " +
                              std::to_string(vocab),
                          "input");
    if (static_cast<int64_t>(inputs[i].size()) > context)
      throw api_error(400,
                      at + " has " + std::to_string(inputs[i].size()) +
                          " tokens; this model's maximum context length is " + std::to_string(context),
                      "invalid_request_error", "input", "context_length_exceeded");
  }
}

void ban_untokenizable(std::vector<sequence_request>& sequences, const tokenizer& tok, int vocab) {
  for (auto& s : sequences)
    for (int64_t id = tok.vocab_size(); id < vocab; ++id)
      s.sampling.logit_bias[static_cast<int32_t>(id)] = -std::numeric_limits<float>::infinity();
}

void admit(size_t queued, size_t running, size_t incoming, const engine_options& o) {
  const auto max_running = static_cast<size_t>(o.max_running);
  const size_t free = max_running - std::min(running, max_running);
  if (queued + incoming > static_cast<size_t>(o.max_queued) + free)
    throw api_error(
        429, "the server is busy: " + std::to_string(queued) + " sequences are already waiting; retry later",
        "rate_limit_error");
}

}  // namespace mlxd::serve::detail
