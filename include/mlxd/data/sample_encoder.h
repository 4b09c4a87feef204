// Records -> token ids + loss mask, with the model's tokenizer.
//
// A line of a file named *.jsonl or *.json is a JSON object; any other file is plain text, one sample a
// line. JSON records, by field (kind auto picks by the fields present):
// - text:       {"text": "..."}                          [BOS] text [EOS], loss on every token but BOS
// - completion: {"prompt": "...", "completion": "..."}   [BOS] prompt completion [EOS], loss on
// completion+EOS
// - chat:       {"messages": [{"role", "content"}...]}   the chat template's rendering, loss on the assistant
//   turns only. The assistant spans are found as TRL does without generation markers: for assistant message
//   i, the rendering of messages[0..i) with the generation prompt ends where its span begins and the
//   rendering of messages[0..i] ends where it ends (both must be prefixes of the whole rendering, or the
//   record fails). The text is encoded span by span (no special tokens added: the template writes them), so
//   every token lies wholly inside or outside a span.
// - preference: {"prompt", "chosen", "rejected"}         see encode_preference.
// Prompt and completion are encoded separately, so the border is a token border.
#pragma once

#include <memory>
#include <string>

#include "mlxd/data/record_source.h"
#include "mlxd/data/sample.h"
#include "mlxd/tokenizer/chat_template.h"
#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd::data {

enum class record_kind { auto_detect, text, completion, chat, preference };

struct encoder_options {
  record_kind kind = record_kind::auto_detect;
  bool add_bos = true;        // text, completion and preference samples (when the tokenizer has a BOS)
  bool add_eos = true;        // likewise, with loss on the EOS
  std::string chat_template;  // Jinja source; empty: the tokenizer's own
};

// Whether the records of `path` are JSON lines (by its extension).
bool is_jsonl(const std::filesystem::path& path);

// A prompt to sample from, as sample_encoder::encode_prompt reads it.
struct prompt_sample {
  std::string text;
  std::vector<token_id> ids;
};

class sample_encoder {
 public:
  // Throws chat_template_error when the chat template given does not parse.
  sample_encoder(tokenizer tok, encoder_options options);

  // Throws data_error naming r.where() for invalid JSON, a missing or mistyped field, a preference record
  // (read those with encode_preference) or a chat template that cannot mark the assistant turns.
  sample encode(const record& r) const;

  // A {"prompt", "chosen", "rejected"} record: [BOS] prompt response [EOS] for each response, the loss on
  // the response and EOS. Throws data_error as encode does.
  preference_sample encode_preference(const record& r) const;

  // A prompt to sample completions of (GRPO, PPO): a plain line or {"prompt": text} is [BOS] text;
  // {"messages": [...]} is the chat template's rendering with the generation prompt, so the completion is
  // the assistant's next turn. `text` is what a reward function sees as the prompt. Throws data_error
  // naming r.where() for a record with neither, or an empty prompt.
  prompt_sample encode_prompt(const record& r) const;

  const tokenizer& tok() const { return tok_; }

 private:
  sample encode_chat(const nlohmann::ordered_json& messages, const record& r) const;
  std::string render_chat(const nlohmann::ordered_json& messages, size_t n, bool generation_prompt,
                          const record& r) const;

  tokenizer tok_;
  encoder_options options_;
  std::shared_ptr<const chat_template> template_;  // null when there is none
};

}  // namespace mlxd::data
