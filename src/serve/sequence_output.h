// What one generated sequence sends its client, token by token, whichever backend samples the tokens: the
// text (whole characters, stop strings cut), the finish reason, and the server's per-token figures.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "mlxd/serve/backend.h"
#include "mlxd/serve/metrics.h"
#include "mlxd/serve/text_stream.h"

namespace mlxd::serve::detail {

class sequence_output {
 public:
  using clock_type = std::chrono::steady_clock;
  // Choice `index` of a request, arrived now. `stats` (optional) counts tokens and latencies.
  sequence_output(int index, const sequence_request& spec, const tokenizer& tok, metrics* stats);

  // Books the sampled token `r` and returns its event: finish_reason "stop" after an end-of-sequence id (its
  // text dropped) or a stop string, "length" at max_tokens, else empty.
  sequence_event add(mlxd::engine::sample_result r);
  bool finished() const { return finished_; }
  size_t n_generated() const { return n_generated_; }

 private:
  int index_;
  int max_tokens_;
  const tokenizer& tok_;
  text_stream text_;
  metrics* stats_;
  size_t n_generated_ = 0;
  bool finished_ = false;
  clock_type::time_point arrival_ = clock_type::now(), last_token_;
};

}  // namespace mlxd::serve::detail
