// A tokenizer given as plain data rather than as a file: the vocabulary of a GGUF file
// (tokenizer.ggml.*), which mlxd/tokenizer_gguf reads and tokenizer::from_vocabulary builds from. The
// tokenizer module itself reads no GGUF, so it stays a leaf.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlxd {

using token_id = int32_t;

// The tokenization algorithm; GGUF's tokenizer.ggml.model names them "gpt2" and "llama".
enum class vocabulary_model {
  byte_level_bpe,     // "gpt2": GPT-2's byte-to-character map, a split regex, merges by rank
  sentencepiece_bpe,  // "llama": SentencePiece BPE, merges by score, "▁" for spaces, <0xNN> byte fallback
  count
};
static_assert(static_cast<int>(vocabulary_model::count) == 2, "update from_vocabulary");

// The type of each token, numbered as llama.cpp's llama_token_type (and tokenizer.ggml.token_type).
enum class token_type : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,       // the <unk> token; matched literally in the text, like control tokens
  control = 3,       // special (BOS, EOS, chat markers): matched literally in the text, skipped on request
  user_defined = 4,  // added but not special: matched literally in the text, always decoded
  unused = 5,        // a placeholder for an id no token uses (e.g. "[PAD42]"); never produced by encode
  byte = 6,          // <0xNN>, the byte fallback of sentencepiece_bpe
  count
};
static_assert(static_cast<int>(token_type::count) == 7, "update from_vocabulary");

struct vocabulary_spec {
  vocabulary_model model = vocabulary_model::byte_level_bpe;
  std::vector<std::string> tokens;  // [n_vocab]: the spelling of each id (byte-level: GPT-2's characters)
  std::vector<token_type> types;    // [n_vocab], or empty: all normal
  std::vector<float> scores;        // [n_vocab]: sentencepiece_bpe merges the best-scored pair first
  std::vector<std::string> merges;  // byte_level_bpe: "left right", best first

  // byte_level_bpe: which split regex, as tokenizer.ggml.pre names it: "gpt2" or "default" (also when
  // empty), "llama-bpe" / "llama3" / "llama-v3", "qwen2" (which also applies NFC, as Qwen's tokenizer.json
  // does). Any other name is refused: its regex is unknown here, and guessing would give other ids.
  std::string pre_tokenizer;

  std::optional<token_id> bos, eos, pad, unk;
  std::optional<token_id> eot, eom;  // end of turn / of message: also end generation (see eos_ids())

  // Whether encode(text, true) adds BOS / EOS. Unset: as llama.cpp does, BOS for sentencepiece_bpe and for
  // the llama-bpe family, nothing else.
  std::optional<bool> add_bos, add_eos;
  bool add_space_prefix = true;  // sentencepiece_bpe: "▁" before each stretch of text (the dummy prefix)
  // Unset: false for sentencepiece_bpe and qwen2, true otherwise (llama.cpp's choices).
  std::optional<bool> clean_up_tokenization_spaces;
  std::string chat_template;  // tokenizer.chat_template; empty when there is none
};

}  // namespace mlxd
