#include "mlxd/engine/chat_session.h"

#include <algorithm>
#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/tokenizer/stream_decoder.h"

namespace mlxd::engine {
namespace {

int chat_context(const models::llama_config& config, int wanted) {
  const int most = config.max_position_embeddings;
  if (wanted == 0) return std::min(most, 4096);
  if (wanted < 2 || wanted > most) {
    throw std::invalid_argument("[chat] context " + std::to_string(wanted) + " is outside [2, " +
                                std::to_string(most) + "] (the model's max_position_embeddings)");
  }
  return wanted;
}

}  // namespace

chat_session::chat_session(const models::llama_model& model, tokenizer tok, chat_options options)
    : model_(model),
      tok_(std::move(tok)),
      options_(std::move(options)),
      messages_(nlohmann::ordered_json::array()),
      cache_(model.make_cache(chat_context(model.config(), options_.context), options_.kv_dtype)) {
  if (tok_.chat_template().empty())
    throw std::invalid_argument("[chat] the model's tokenizer has no chat template (chat needs one)");
  if (options_.max_tokens < 1)
    throw std::invalid_argument("[chat] max_tokens must be at least 1, not " +
                                std::to_string(options_.max_tokens));
  validate(options_.sampling, model.config().vocab_size);
  stops_ = options_.stop_ids;
  if (!options_.ignore_eos) stops_.insert(stops_.end(), tok_.eos_ids().begin(), tok_.eos_ids().end());
  reset();
}

void chat_session::reset() {
  messages_ = nlohmann::ordered_json::array();
  if (!options_.system.empty()) messages_.push_back({{"role", "system"}, {"content", options_.system}});
  cache_.truncate(0);
  cached_.clear();
}

chat_turn chat_session::reply(const std::string& user, const std::function<void(std::string_view)>& on_text) {
  nlohmann::ordered_json conversation = messages_;
  conversation.push_back({{"role", "user"}, {"content", user}});
  chat_request request;
  request.messages = conversation;
  request.add_generation_prompt = true;
  // The template writes BOS and the turn markers itself, so the text is encoded without added specials.
  const std::vector<int32_t> prompt = tok_.encode(apply_chat_template(tok_, request), false);
  const int capacity = cache_.capacity();
  if (prompt.empty()) throw std::invalid_argument("[chat] the conversation renders to no tokens");
  if (static_cast<int>(prompt.size()) >= capacity) {
    throw std::invalid_argument("[chat] the conversation is " + std::to_string(prompt.size()) +
                                " tokens and the context holds " + std::to_string(capacity) +
                                ": no room for a reply (reset, or give a larger context)");
  }
  // Keep the cached prefix the prompt shares; at least one token is prefilled so there are logits to sample.
  size_t keep = 0;
  while (keep < cached_.size() && keep + 1 < prompt.size() && cached_[keep] == prompt[keep]) ++keep;
  cache_.truncate(static_cast<int>(keep));
  cached_.resize(keep);

  chat_turn turn;
  turn.prompt_tokens = static_cast<int>(prompt.size());
  turn.reused_tokens = static_cast<int>(keep);
  array logits = model_.forward_last(
      std::vector<int32_t>(prompt.begin() + static_cast<int64_t>(keep), prompt.end()), cache_);  // [1, vocab]
  cached_ = prompt;
  sampler draw(options_.sampling, model_.config().vocab_size);
  stream_decoder stream(tok_, true);
  auto emit = [&](const std::string& piece) {
    turn.text += piece;
    if (on_text && !piece.empty()) on_text(piece);
  };
  for (int i = 0; i < options_.max_tokens; ++i) {
    const int64_t n = logits.shape(0);
    const array last = contiguous(slice_axis(logits, 0, n - 1, n));  // [1, vocab]
    const sample_result r = draw.sample({last.data<float>(), static_cast<size_t>(last.size())}, turn.tokens);
    turn.tokens.push_back(r.id);
    emit(stream.push(r.id));
    if (std::find(stops_.begin(), stops_.end(), r.id) != stops_.end() || i + 1 == options_.max_tokens) break;
    if (cache_.length() == capacity) {
      turn.context_full = true;
      break;
    }
    logits = model_.forward({r.id}, cache_);
    cached_.push_back(r.id);
  }
  emit(stream.finish());
  conversation.push_back({{"role", "assistant"}, {"content", turn.text}});
  messages_ = std::move(conversation);
  return turn;
}

}  // namespace mlxd::engine
