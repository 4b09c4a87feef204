// What every backend checks before it takes a request's sequences: valid prompts, limits and sampling
// parameters (400), and room in its queue (429).
#pragma once

#include <cstddef>
#include <vector>

#include "mlxd/serve/backend.h"

namespace mlxd::serve::detail {

// Throws api_error 400 for an empty prompt, an id outside `vocab`, max_tokens < 1, prompt + max_tokens over
// `context`, or sampling parameters out of range; each names the request field.
void check_sequences(const std::vector<sequence_request>& sequences, int vocab, int context);

// Ids past the tokenizer's vocabulary (padding rows of the embedding) have no text: never sample them.
void ban_untokenizable(std::vector<sequence_request>& sequences, const tokenizer& tok, int vocab);

// Throws api_error 429 unless `incoming` more sequences fit beside `queued` waiting ones and `running` ones.
void admit(size_t queued, size_t running, size_t incoming, const engine_options& o);

}  // namespace mlxd::serve::detail
