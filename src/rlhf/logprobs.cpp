#include "mlxd/rlhf/logprobs.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "mlxd/core/ops.h"
#include "mlxd/rlhf/masked.h"

namespace mlxd::rlhf {

token_logprobs sequence_logprobs(const array& logits, const array& labels, const array& mask) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("[sequence_logprobs] " + what + " (logits " + logits.to_string() +
                                ", labels " + labels.to_string() + ", mask " + mask.to_string() + ")");
  };
  if (logits.ndim() != 3 || !is_floating(logits.type())) fail("logits must be a float [B, T, V] array");
  if (labels.shape() != shape_t{logits.shape(0), logits.shape(1)} || is_floating(labels.type()) ||
      is_quantized(labels.type()) || labels.type() == dtype::boolean) {
    fail("labels must be integer [B, T]");
  }
  const array valid = valid_mask(mask, labels.shape(), "sequence_logprobs");
  const int64_t vocab = logits.shape(2);
  // Masked positions become cross_entropy's ignore_index (-1), so neither their labels nor their logits are
  // read; valid labels are checked here to name this function in the error.
  std::vector<int64_t> lab = labels.to_vector<int64_t>();
  const std::vector<uint8_t> m = valid.to_vector<uint8_t>();
  for (size_t i = 0; i < lab.size(); ++i) {
    if (!m[i]) {
      lab[i] = -1;
    } else if (lab[i] < 0 || lab[i] >= vocab) {
      fail("label " + std::to_string(lab[i]) + " at flat position " + std::to_string(i) + " is outside [0, " +
           std::to_string(vocab) + ")");
    }
  }
  const array targets = array::from(lab, labels.shape(), dtype::i64);
  token_logprobs r;
  r.tokens = neg(cross_entropy(astype(logits, dtype::f32), targets, -1));
  r.sums = sum(r.tokens, {1});
  r.counts = sum(astype(valid, dtype::f32), {1});
  return r;
}

}  // namespace mlxd::rlhf
