// tokenizer::from_vocabulary: a vocabulary given as data (a GGUF file's tokenizer) becomes the same
// pipeline the tokenizer.json it was converted from describes — added tokens for the control, user-defined
// and unknown tokens, the split regex that tokenizer.ggml.pre names, merges by rank (byte_level_bpe) or by
// score (sentencepiece_bpe), and the matching decoder — so both give the same ids.
#pragma once

#include <memory>

#include "mlxd/tokenizer/vocabulary_spec.h"
#include "tokenizer/tokenizer_backend.h"

namespace mlxd::tokenizer_detail {

// Throws tokenizer_error naming the fault when the spec is inconsistent or names an unknown pre-tokenizer.
std::shared_ptr<const tokenizer_impl> build_from_vocabulary(const vocabulary_spec& spec);

}  // namespace mlxd::tokenizer_detail
