// What every backend checks before it takes a request's sequences: valid prompts, limits and sampling
// parameters (400), and room in its queue (429).
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "mlxd/serve/api_error.h"
#include "mlxd/serve/backend.h"
#include "mlxd/serve/metrics.h"

namespace mlxd::serve::detail {

// Throws api_error 400 for an empty prompt, an id outside `vocab`, max_tokens < 1, prompt + max_tokens over
// `context`, or sampling parameters out of range; each names the request field.
void check_sequences(const std::vector<sequence_request>& sequences, int vocab, int context);

// Throws api_error 400 naming input[i] for an empty token sequence, an id outside `vocab` or more tokens than
// `context` (/v1/embeddings).
void check_embedding_inputs(const std::vector<std::vector<int32_t>>& inputs, int vocab, int context);

// Ids past the tokenizer's vocabulary (padding rows of the embedding) have no text: never sample them.
void ban_untokenizable(std::vector<sequence_request>& sequences, const tokenizer& tok, int vocab);

// Throws api_error 429 unless `incoming` more sequences fit beside `queued` waiting ones and `running` ones.
void admit(size_t queued, size_t running, size_t incoming, const engine_options& o);

// Moves a request's `made` sequences to the back of `queue` and publishes the queue depth in `stats`
// (optional); throws api_error 503 when `stopping` and 429 when admit() refuses, leaving `queue` as it was.
// The caller holds the lock that guards `queue` and `running`, and wakes its workers afterwards.
template <class Sequence>
void enqueue(std::deque<std::unique_ptr<Sequence>>& queue, std::vector<std::unique_ptr<Sequence>>& made,
             bool stopping, size_t running, const engine_options& o, metrics* stats) {
  if (stopping) throw api_error(503, "the server is shutting down", "server_error");
  admit(queue.size(), running, made.size(), o);
  for (auto& s : made) queue.push_back(std::move(s));
  if (stats) stats->queue_depth = static_cast<int64_t>(queue.size());
}

}  // namespace mlxd::serve::detail
