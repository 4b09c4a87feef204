#include "mlxd/tokenizer/stream_decoder.h"

namespace mlxd {
namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD: the window ends inside a character

}  // namespace

stream_decoder::stream_decoder(tokenizer tok, bool skip_special_tokens)
    : tok_(std::move(tok)), options_{skip_special_tokens, false} {}

std::string stream_decoder::push(token_id id) {
  tok_.id_to_token(id);  // validate before the id joins the window
  window_.push_back(id);
  const std::string text = tok_.decode_tokens(window_, options_);
  if (text.size() <= emitted_.size() || text.ends_with(replacement)) return {};
  std::string fresh = text.substr(emitted_.size());
  // The tokens just emitted become the context of the next window.
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(read_));
  read_ = window_.size();
  emitted_ = tok_.decode_tokens(window_, options_);
  return fresh;
}

std::string stream_decoder::finish() {
  std::string rest;
  if (window_.size() > read_) {
    const std::string text = tok_.decode_tokens(window_, options_);
    if (text.size() > emitted_.size()) rest = text.substr(emitted_.size());
  }
  window_.clear();
  read_ = 0;
  emitted_.clear();
  return rest;
}

}  // namespace mlxd
