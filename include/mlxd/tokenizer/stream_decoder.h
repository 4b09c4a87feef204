// Incremental detokenization for streaming generation: feed ids one at a time, get back only text made of
// complete UTF-8 characters (a character split across byte-fallback or byte-level tokens is held until
// whole).
//
// The pieces returned by push() and finish() concatenate to decode(all ids) with
// clean_up_tokenization_spaces off (that clean-up looks across token boundaries, so streams never apply it).
// Each new id decodes a short window that starts one emitted token back, so the cost per id stays constant.
// Not thread-safe: one stream per generated sequence.
#pragma once

#include <string>
#include <vector>

#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd {

class stream_decoder {
 public:
  explicit stream_decoder(tokenizer tok, bool skip_special_tokens = false);

  // Adds `id` and returns the text it completes (often empty). Throws invalid_token_id for an unknown id.
  std::string push(token_id id);

  // Returns what is still held back (an incomplete character shows as U+FFFD) and resets the stream.
  std::string finish();

 private:
  tokenizer tok_;
  decode_options options_;
  std::vector<token_id> window_;  // ids from the last emitted context token on
  size_t read_ = 0;               // window_[0, read_) is the text already emitted
  std::string emitted_;           // decode(window_[0, read_))
};

}  // namespace mlxd
