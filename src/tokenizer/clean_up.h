// transformers' clean_up_tokenization: the spaces that word-level tokenizers left before punctuation and
// contractions are removed on decode when clean_up_tokenization_spaces is on.
#pragma once

#include <string>

namespace mlxd::tokenizer_detail {

// " ." -> ".", " ?" -> "?", " n't" -> "n't" and the other rules of transformers, applied in its order.
std::string clean_up_tokenization(std::string text);

}  // namespace mlxd::tokenizer_detail
