// A SentencePiece model (tokenizer.model) run by libsentencepiece, the reference implementation itself:
// its normalizer, its BPE or unigram model, byte fallback, and its decoding (control tokens give no text).
// Special tokens written literally in the text are not matched, as in SentencePiece. (Debian's
// libsentencepiece exports the protobuf-lite it bundles; mlxd links its own protobuf statically and hidden,
// see src/comm/CMakeLists.txt, so the two never bind to each other.)
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "tokenizer/tokenizer_backend.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace mlxd::tokenizer_detail {

class sentencepiece_backend final : public tokenizer_backend {
 public:
  // Parses a serialized ModelProto. Throws tokenizer_error with SentencePiece's message when it cannot.
  explicit sentencepiece_backend(std::string_view model_proto);
  ~sentencepiece_backend() override;

  // The ids encode(text, true) puts before / after the text (none by default).
  void set_special_tokens_to_add(std::optional<int32_t> bos, std::optional<int32_t> eos);

  // The model's own BOS, EOS, PAD and UNK ids (none when the model has none).
  std::optional<int32_t> model_bos() const;
  std::optional<int32_t> model_eos() const;
  std::optional<int32_t> model_pad() const;
  std::optional<int32_t> model_unk() const;

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  const std::string* find_token(int32_t id) const override;
  int64_t vocab_size() const override;
  bool is_special(int32_t id) const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::optional<int32_t> add_bos_, add_eos_;
};

}  // namespace mlxd::tokenizer_detail
