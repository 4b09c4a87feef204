// The tokenizer embedded in a GGUF file (tokenizer.ggml.* metadata, as llama.cpp's converter writes it),
// and one entry that loads a tokenizer from any source a user may name. A library of its own because it
// needs both the tokenizer module, a leaf, and the GGUF reader of io.
//
// Keys read: tokenizer.ggml.model ("gpt2": byte-level BPE, "llama": SentencePiece BPE), .tokens, .token_type,
// .scores ("llama"), .merges ("gpt2"), .pre, .bos_token_id, .eos_token_id, .eot_token_id, .eom_token_id,
// .padding_token_id, .unknown_token_id, .add_bos_token, .add_eos_token, .add_space_prefix, and
// tokenizer.chat_template.
#pragma once

#include <filesystem>

#include "mlxd/io/gguf.h"
#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd {

// The vocabulary of GGUF metadata. Throws tokenizer_error naming the key when tokenizer.ggml.model or
// tokenizer.ggml.tokens is missing, the model is neither "gpt2" nor "llama", or a key has the wrong type.
vocabulary_spec read_gguf_vocabulary(const gguf_metadata& metadata);

// The tokenizer of the GGUF file at `path` (only its metadata is read). Throws tokenizer_error, whose
// message names the file, when the file cannot be read, is not valid GGUF, or holds no usable tokenizer.
tokenizer load_gguf_tokenizer(const std::filesystem::path& path);

// A GGUF file (recognised by its magic) through load_gguf_tokenizer; anything else (a model folder,
// tokenizer.json, tokenizer.model) through tokenizer::load.
tokenizer load_tokenizer(const std::filesystem::path& path);

}  // namespace mlxd
