// A SentencePiece BPE model (tokenizer.model, a serialized ModelProto) as GGUF "llama" tokenizer metadata,
// as llama.cpp's converter writes it: pieces, scores and types, the special ids of the trainer spec, and the
// normalizer's dummy prefix.
#pragma once

#include <string_view>

#include "mlxd/io/gguf.h"

namespace mlxd::detail {

// Adds the tokenizer.ggml.* keys of the model whose bytes are `proto` (named `origin` in errors) to `out`.
// Throws tokenizer_error for malformed bytes (every read is bounds-checked) and for a unigram model, which
// GGUF's "llama" tokenizer (BPE by score) would encode differently.
void add_sentencepiece_tokenizer(std::string_view proto, const std::string& origin, gguf_metadata& out);

}  // namespace mlxd::detail
