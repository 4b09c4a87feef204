// What the readers make of one record: token ids and, per token, whether the model is trained to predict
// it. The loss mask is per token, not yet shifted: loss[i] says that ids[i] is a target (predicted from
// ids[0..i)); batching turns it into next-token targets (see batch.h).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd::data {

// Label of a position with no loss (PyTorch's cross-entropy ignore_index).
inline constexpr int32_t ignore_label = -100;

struct sample {
  std::vector<token_id> ids;
  std::vector<uint8_t> loss;  // same length as ids: 1 where ids[i] is a target

  // ids where loss is 0 replaced by ignore_label: Hugging Face's unshifted `labels`.
  std::vector<int32_t> labels() const;
};

// A preference pair: the same prompt tokens (no loss) followed by the chosen or the rejected response (loss
// on the response tokens and the EOS that ends them).
struct preference_sample {
  sample chosen;
  sample rejected;
  size_t prompt_length = 0;  // tokens of the shared prompt at the start of both
};

// Malformed data, named by file:line: invalid JSON, a missing field, a field of the wrong type, a chat
// template that cannot mark the assistant turns.
class data_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mlxd::data
