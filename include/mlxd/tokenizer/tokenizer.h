// Text <-> token ids with the tokenizer of a model, giving the same ids and text as the reference
// implementation of each kind:
//
// - Hugging Face tokenizer.json (reference: Hugging Face tokenizers) with a BPE model — byte-level BPE
// (GPT-2,
//   Llama-3.x, Qwen2/2.5/3: Split pre-tokenizer with the model's regex run by PCRE2, ByteLevel, merges by
//   rank, ignore_merges) and the SentencePiece-style BPE of Llama-2 / Mistral (Prepend + Replace normalizers
//   or Metaspace, byte_fallback) — with the NFC/NFD/NFKC/NFKD (ICU), Prepend and Replace normalizers,
//   TemplateProcessing for BOS/EOS, the decoders these files use, and added tokens matched in the text before
//   the model runs.
// - SentencePiece tokenizer.model (reference: SentencePiece itself, which runs it: libsentencepiece). As in
//   SentencePiece, special tokens written literally in the text ("<s>") are not matched: they encode as
//   text. Decoding follows SentencePiece too: control tokens (<s>, </s>) decode to nothing, <unk> to " ⁇ ".
// - A vocabulary given as data (from_vocabulary): the tokenizer of a GGUF file, which behaves as the
//   tokenizer.json it was converted from (added/control tokens matched in the text, as llama.cpp does).
//
// Beside the tokenizer file, tokenizer_config.json supplies BOS/EOS/PAD/UNK, clean_up_tokenization_spaces,
// additional_special_tokens, add_bos_token/add_eos_token (tokenizer.model only) and the chat template;
// generation_config.json supplies bos_token_id and eos_token_id (one id or a list).
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
#include "mlxd/tokenizer/vocabulary_spec.h"

namespace mlxd {

namespace tokenizer_detail {
struct tokenizer_impl;
}

struct decode_options {
  // Drop special tokens: special added tokens and the config's additional_special_tokens; for a
  // SentencePiece model, its control and unknown tokens.
  bool skip_special_tokens = false;
  // Undo the spaces before punctuation that word-level tokenizers produced (" ?" -> "?", " n't" -> "n't",
  // ...). Unset: the tokenizer's clean_up_tokenization_spaces (true if the config does not say, as the
  // reference).
  std::optional<bool> clean_up_tokenization_spaces;
};

class tokenizer {
 public:
  // Loads a model folder (its tokenizer.json or, when it has none, its tokenizer.model), a tokenizer.json
  // file, or a SentencePiece model file (a name ending in ".model"); tokenizer_config.json and
  // generation_config.json beside it are read when present. Throws tokenizer_error naming the file and the
  // fault when it cannot be read, is malformed, uses a component outside the supported set listed above
  // (e.g. a WordPiece or Unigram tokenizer.json model: such files are refused by name rather than encoded
  // differently), or names BOS/EOS ids outside the vocabulary. GGUF files are read by load_tokenizer
  // (mlxd/tokenizer_gguf/gguf_tokenizer.h), not here.
  static tokenizer load(const std::filesystem::path& path);

  // Builds a tokenizer from the text of tokenizer.json and of tokenizer_config.json (empty: none).
  static tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {});

  // Builds a tokenizer from the bytes of a SentencePiece model (a serialized ModelProto, the content of
  // tokenizer.model) and the text of tokenizer_config.json (empty: none). encode(text, true) adds BOS unless
  // the config sets add_bos_token false, and EOS when it sets add_eos_token true. Throws tokenizer_error
  // when the model cannot be parsed.
  static tokenizer from_sentencepiece(std::string_view model_proto, std::string_view config_json = {});

  // Builds a tokenizer from a vocabulary given as data (see vocabulary_spec.h). Throws tokenizer_error when
  // the spec is inconsistent (array lengths, ids outside the vocabulary, an unknown pre-tokenizer name).
  static tokenizer from_vocabulary(const vocabulary_spec& spec);

  // The ids of `text`. Ill-formed UTF-8 is first replaced by U+FFFD (one per maximal subpart, as a browser's
  // TextDecoder does); nothing the input holds can make this throw. add_special_tokens adds what the
  // post-processor's template says (BOS for Llama-2/Mistral; nothing for Llama-3.0 and Qwen3 tokenizer.json),
  // or what tokenizer_config.json / the GGUF metadata says for the other kinds.
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
  // Whether `id` is a special token (skipped by skip_special_tokens).
  bool is_special(token_id id) const;

  // From tokenizer_config.json (bos_token, eos_token, pad_token, unk_token) when given and in the vocabulary;
  // otherwise from the SentencePiece model or the GGUF metadata; bos_id and eos_id fall back to
  // generation_config.json.
  std::optional<token_id> bos_id() const;
  std::optional<token_id> eos_id() const;
  std::optional<token_id> pad_id() const;
  std::optional<token_id> unk_id() const;
  // Every id that ends generation: eos_id() first (when there is one), then the other ids of
  // generation_config.json's eos_token_id (or a GGUF's end-of-turn / end-of-message ids), without repeats.
  const std::vector<token_id>& eos_ids() const;

  // The chat template (Jinja source) of tokenizer_config.json or of the GGUF metadata; empty when there is
  // none. With several named templates, the one named "default". Render it with apply_chat_template
  // (chat_template.h).
  const std::string& chat_template() const;

 private:
  explicit tokenizer(std::shared_ptr<const tokenizer_detail::tokenizer_impl> impl) : impl_(std::move(impl)) {}
  std::string decode_tokens(std::span<const token_id> ids, const decode_options& options) const;
  friend class stream_decoder;

  std::shared_ptr<const tokenizer_detail::tokenizer_impl> impl_;
};

}  // namespace mlxd
