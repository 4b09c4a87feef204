// Batches of next-token training rows, packed or padded.
//
// Every field is [rows, seq_len], row-major. inputs[t] is the token at position t; targets[t] is the token
// the model must predict there (the next token of the same sample, when that token carries loss) or
// ignore_label. A sample never predicts another's token: the last token of each segment has no target, so
// the first token of the next packed sample is never predicted from the one before.
// segment_ids number the samples of a row from 1 (0: padding); attention may only join positions of the same
// non-zero segment (causally), and position_ids restart at 0 in each segment.
//
// Packing puts whole samples one after another into rows. A sample that does not fit the rest of a row
// starts the next row (the rest is padding), except a sample longer than seq_len, which fills the rest of
// the row and continues in the next rows as further segments (positions restarting). Padding puts one
// sample per row (long samples split the same way). No token is lost or repeated.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "mlxd/data/record_source.h"
#include "mlxd/data/sample.h"
#include "mlxd/data/sample_encoder.h"

namespace mlxd::data {

struct batch {
  int64_t rows = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> inputs;        // [rows, seq_len]
  std::vector<int32_t> targets;       // [rows, seq_len]
  std::vector<int32_t> segment_ids;   // [rows, seq_len]
  std::vector<int32_t> position_ids;  // [rows, seq_len]
  int64_t n_targets = 0;              // targets that are not ignore_label

  // Whether position q of `row` may attend to position k (same non-zero segment, k <= q).
  bool attends(int64_t row, int64_t q, int64_t k) const;
};

struct batch_options {
  int64_t rows = 8;
  int64_t seq_len = 256;
  bool pack = true;     // false: one sample per row, padded
  token_id pad_id = 0;  // the input at padding positions
};

// Packs (or pads) `samples`, in order, into batches of options.rows rows (the last may have fewer).
std::vector<batch> make_batches(const std::vector<sample>& samples, const batch_options& options);

// Draws samples from a record source through an encoder into batches. position() is a cursor that resumes
// exactly: restored into a loader with the same options, it yields the same remaining batches.
class batch_loader {
 public:
  // Throws std::invalid_argument for rows or seq_len below 1.
  batch_loader(record_source source, const sample_encoder& encoder, batch_options options);

  // The next batch; nullopt when the source is exhausted. The last batch may have fewer rows.
  std::optional<batch> next();

  cursor position() const;
  void restore(const cursor& c);

 private:
  bool fetch();  // ensures a pending sample; false at the end

  record_source source_;
  const sample_encoder& encoder_;
  batch_options options_;
  std::optional<sample> pending_;
  cursor pending_cursor_;        // the source position before the pending sample
  uint64_t pending_offset_ = 0;  // tokens of the pending sample already batched
  uint64_t skip_ = 0;            // after restore: tokens of the next sample already batched before
};

}  // namespace mlxd::data
