// The text of one generated sequence as it streams: whole UTF-8 characters only, special tokens (end of
// sequence) dropped, and stop strings cut out. Text that could be the start of a stop string is held back
// until the next tokens show it is not, so a stop string never reaches the client, even when its characters
// come from several tokens. Not thread-safe: one per sequence.
#pragma once

#include <string>
#include <vector>

#include "mlxd/tokenizer/stream_decoder.h"

namespace mlxd::serve {

class text_stream {
 public:
  text_stream(const tokenizer& tok, std::vector<std::string> stop);

  // Adds the token `id`; returns the text that is now safe to send (often empty). After a stop string
  // appears, stopped() is true and nothing more is returned.
  std::string push(token_id id);
  // The text still held back (an incomplete character shows as U+FFFD), without any stop string.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::string release();
  stream_decoder decoder_;
  std::vector<std::string> stop_;
  std::string pending_;  // decoded, not yet sent
  bool stopped_ = false;
};

}  // namespace mlxd::serve
