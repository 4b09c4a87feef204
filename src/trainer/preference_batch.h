// Preference pairs as one batch of rows: the chosen response of pair i in row i, the rejected one in row
// N + i, each row one sample padded to the longest, so one forward scores both sides. Internal to the
// trainer module.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/data/record_source.h"
#include "mlxd/data/sample_encoder.h"
#include "mlxd/models/llama_train.h"

namespace mlxd::trainer {

struct preference_record {
  data::preference_sample sample;
  double margin = 0;  // the record's optional "margin": how far the chosen reward must lead
  uint64_t key = 0;   // fnv1a64 of the record's bytes, naming it in the reference cache
};

struct pair_batch {
  models::train_batch inputs;  // [2N, T]
  array labels;                // [2N, T] i32: the next token where it is a response token, else ignore_label
  array mask;                  // [2N, T] f32: 1 where labels counts
  array last;                  // [2N] i32: index row * T + t of each row's last token (the reward head's)
  array margins;               // [N] f32
  std::vector<uint64_t> keys;  // [N]
  int64_t pairs = 0;
  int64_t tokens = 0;  // non-padding tokens
};

// Up to `n` pairs from `source` (fewer at the end of a finite stream). A response cut by seq_len keeps its
// first tokens; a prompt that leaves no room for a response token is a data_error naming the record.
std::vector<preference_record> read_pairs(data::record_source& source, const data::sample_encoder& encoder,
                                          int64_t n, int64_t seq_len);

pair_batch make_pair_batch(const std::vector<preference_record>& pairs, int32_t pad_id);

}  // namespace mlxd::trainer
