// Text <-> token ids with the tokenizer of a Hugging Face model, giving the same ids and text as the
// reference (Hugging Face tokenizers) on real tokenizer.json files.
//
// Supported today: tokenizer.json with a BPE model — byte-level BPE (GPT-2, Llama-3.x, Qwen2/2.5/3: Split
// pre-tokenizer with the model's regex run by PCRE2, ByteLevel, merges by rank, ignore_merges) and the
// SentencePiece-style BPE of Llama-2 / Mistral (Prepend + Replace normalizers or Metaspace, byte_fallback) —
// with the NFC/NFD/NFKC/NFKD (ICU), Prepend and Replace normalizers, TemplateProcessing for BOS/EOS, the
// decoders these files use, and added tokens matched in the text before the model runs. tokenizer_config.json
// beside it supplies BOS/EOS/PAD/UNK, clean_up_tokenization_spaces and additional_special_tokens.
//
// A tokenizer is an immutable, cheaply copyable handle; every const member is thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd {

using token_id = int32_t;

namespace tokenizer_detail {
struct tokenizer_impl;
}

struct decode_options {
  bool skip_special_tokens = false;  // drop special added tokens and the config's additional_special_tokens
  // Undo the spaces before punctuation that word-level tokenizers produced (" ?" -> "?", " n't" -> "n't",
  // ...). Unset: the tokenizer's clean_up_tokenization_spaces (true if the config does not say, as the
  // reference).
  std::optional<bool> clean_up_tokenization_spaces;
};

class tokenizer {
 public:
  // Loads a model folder (its tokenizer.json and, if present, tokenizer_config.json) or a tokenizer.json file
  // (with the tokenizer_config.json beside it, if any). Throws tokenizer_error naming the file and the fault
  // when it cannot be read, is malformed, or uses a component outside the supported set listed above (e.g. a
  // WordPiece or Unigram model): such files are refused by name rather than encoded differently.
  static tokenizer load(const std::filesystem::path& path);

  // Builds a tokenizer from the text of tokenizer.json and of tokenizer_config.json (empty: none).
  static tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {});

  // The ids of `text`. Ill-formed UTF-8 is first replaced by U+FFFD (one per maximal subpart, as a browser's
  // TextDecoder does); nothing the input holds can make this throw. add_special_tokens adds what the
  // post-processor's template says (BOS for Llama-2/Mistral; nothing for Llama-3.0 and Qwen3 tokenizer.json).
  std::vector<token_id> encode(std::string_view text, bool add_special_tokens = true) const;

  // The text of `ids`. Throws invalid_token_id for an id that names no token.
  std::string decode(std::span<const token_id> ids, bool skip_special_tokens = false) const;
  std::string decode(std::span<const token_id> ids, const decode_options& options) const;

  // The id of a token spelled as in the vocabulary (byte-level tokens use GPT-2's characters, e.g. "Ġthe").
  std::optional<token_id> token_to_id(std::string_view token) const;
  // The vocabulary spelling of `id`; throws invalid_token_id if it names no token.
  const std::string& id_to_token(token_id id) const;
  // One more than the largest id of the vocabulary and the added tokens.
  int64_t vocab_size() const;
  // Whether `id` is a special added token (skipped by skip_special_tokens).
  bool is_special(token_id id) const;

  // From tokenizer_config.json (bos_token, eos_token, pad_token, unk_token), when given and in the
  // vocabulary.
  std::optional<token_id> bos_id() const;
  std::optional<token_id> eos_id() const;
  std::optional<token_id> pad_id() const;
  std::optional<token_id> unk_id() const;

  // The Jinja chat template of tokenizer_config.json ("chat_template": a string, or a list of named
  // templates of which "default" is taken), if there is one. Render it with apply_chat_template.
  std::optional<std::string> chat_template() const;

 private:
  explicit tokenizer(std::shared_ptr<const tokenizer_detail::tokenizer_impl> impl) : impl_(std::move(impl)) {}
  std::string decode_tokens(std::span<const token_id> ids, const decode_options& options) const;
  friend class stream_decoder;

  std::shared_ptr<const tokenizer_detail::tokenizer_impl> impl_;
};

}  // namespace mlxd
