// Errors of the tokenizer module.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mlxd {

// A tokenizer file that cannot be read, is malformed, or uses a component mlxd does not implement. The
// message names the file (when there is one) and the fault.
class tokenizer_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A chat template that cannot be parsed or rendered: a syntax error, a construct mlxd's Jinja interpreter
// does not implement, a type error, or the template's own raise_exception(). The message names the construct
// and the template line.
class chat_template_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A token id outside the vocabulary was passed to decode / id_to_token.
class invalid_token_id : public std::invalid_argument {
 public:
  invalid_token_id(int64_t id, int64_t vocab_size)
      : std::invalid_argument("[tokenizer] token id " + std::to_string(id) +
                              " is out of range (vocabulary size " + std::to_string(vocab_size) + ")"),
        id_(id),
        vocab_size_(vocab_size) {}
  int64_t id() const { return id_; }
  int64_t vocab_size() const { return vocab_size_; }

 private:
  int64_t id_;
  int64_t vocab_size_;
};

}  // namespace mlxd
