// Shared by the data tests: a small byte-level BPE tokenizer with ChatML special tokens, trained once from a
// fixed text with mlxd's own trainer.
#pragma once

#include <string>

#include "mlxd/tokenizer/bpe_trainer.h"
#include "mlxd/tokenizer/tokenizer.h"
#include "support/temp_dir.h"

namespace mlxd::test {

// Special tokens: <s> 0, </s> 1, <|im_start|> 2, <|im_end|> 3.
inline const tokenizer& test_tokenizer() {
  static const tokenizer tok = [] {
    bpe_trainer_options o;
    o.vocab_size = 400;
    bpe_trainer trainer(o);
    for (int i = 0; i < 20; ++i) {
      trainer.add_text(
          "In the beginning God created the heaven and the earth. And the earth was without form, and void.\n"
          "What is the capital of France? The capital of France is Paris. Hello, how are you today?\n"
          "user assistant system You are a helpful assistant.\n");
    }
    static temp_dir dir("data_tokenizer");
    save_tokenizer_files(trainer.train(), {}, dir.path());
    return tokenizer::load(dir.path());
  }();
  return tok;
}

}  // namespace mlxd::test
