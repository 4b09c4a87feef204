// The packing loop shared by make_batches and batch_loader: samples come through a feed that says which
// sample is next and how many of its tokens are already batched.
#pragma once

#include <optional>

#include "mlxd/data/batch.h"

namespace mlxd::data::detail {

struct sample_feed {
  virtual ~sample_feed() = default;
  // The current sample with tokens left (its first `offset` already batched); nullptr at the end.
  virtual const sample* peek(uint64_t& offset) = 0;
  // Marks n more tokens of the current sample batched.
  virtual void consume(uint64_t n) = 0;
};

void check(const batch_options& o);
// Fills one batch from `feed`; nullopt when the feed had nothing.
std::optional<batch> fill(const batch_options& o, sample_feed& feed);

}  // namespace mlxd::data::detail
