// The interface behind mlxd::tokenizer: one implementation per kind of tokenizer (the Hugging Face
// tokenizer.json pipeline, SentencePiece), plus the settings every kind shares, which come from the
// configuration files around the tokenizer rather than from the algorithm.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mlxd::tokenizer_detail {

class tokenizer_backend {
 public:
  virtual ~tokenizer_backend() = default;

  // The ids of `text`, which is valid UTF-8; with add_special_tokens, BOS/EOS as the backend's own
  // configuration says.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const = 0;
  // The text of `ids`, each of which names a token (find_token(id) != nullptr); no clean-up of spaces.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;

  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // The spelling of `id`, or nullptr when it names no token.
  virtual const std::string* find_token(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;
};

struct tokenizer_settings {
  std::optional<int32_t> bos, pad, unk;
  std::vector<int32_t> eos;  // eos_ids(): eos_id() first
  bool clean_up_tokenization_spaces = true;
  std::string chat_template;
};

struct tokenizer_impl {
  std::unique_ptr<const tokenizer_backend> backend;
  tokenizer_settings settings;
};

}  // namespace mlxd::tokenizer_detail
