// A Hugging Face tokenizer folder written as GGUF tokenizer.ggml.* metadata, as llama.cpp's converter writes
// it, so that a converted GGUF file carries its tokenizer (read back by load_gguf_tokenizer).
#pragma once

#include <filesystem>

#include "mlxd/io/gguf.h"

namespace mlxd {

// Adds the tokenizer of `folder` (tokenizer.json with a byte-level BPE model, tokenizer_config.json when
// present) to `metadata`: model "gpt2", tokens, token types, merges, pre ("gpt2", "llama-bpe" or "qwen2",
// recognised from the pre-tokenizer), bos/eos/pad/unk ids, add_bos_token (from the post-processor), and
// tokenizer.chat_template. Throws tokenizer_error naming what GGUF's byte-level model cannot hold (another
// model type, a normalizer, an unknown split pattern); `metadata` is unchanged then. A folder with only a
// SentencePiece tokenizer.model (a BPE one; unigram models are refused) gets model "llama" with its pieces,
// scores and types, its special ids, add_space_prefix, add_bos_token true, and the chat template.
void add_gguf_tokenizer(const std::filesystem::path& folder, gguf_metadata& metadata);

}  // namespace mlxd
