#include "mlxd/serve/text_stream.h"

#include <algorithm>

namespace mlxd::serve {

text_stream::text_stream(const tokenizer& tok, std::vector<std::string> stop)
    : decoder_(tok, true), stop_(std::move(stop)) {}

std::string text_stream::push(token_id id) {
  if (stopped_) return {};
  pending_ += decoder_.push(id);
  return release();
}

std::string text_stream::finish() {
  if (stopped_) return {};
  pending_ += decoder_.finish();
  std::string out = release();
  if (!stopped_) out += pending_;
  pending_.clear();
  return out;
}

// Sends pending_ up to the first stop string (and stops), or up to the longest tail that starts a stop
// string.
std::string text_stream::release() {
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  size_t hold = 0;
  for (const auto& s : stop_) {
    for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n) {
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  // A tail matching the start of a valid UTF-8 stop string begins at a character boundary.
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

}  // namespace mlxd::serve
