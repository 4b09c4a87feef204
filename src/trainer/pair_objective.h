// What the objectives on preference pairs (DPO, the reward model) share: their record stream, read
// data.batch_size pairs at a time into one batch, and its cursor. Internal to the trainer module.
#pragma once

#include "objective.h"
#include "preference_batch.h"

namespace mlxd::trainer {

class pair_objective : public objective {
 public:
  pair_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder)
      : cfg_(c), source_(std::move(source)), encoder_(encoder) {}

  data::cursor position() const override { return source_.position(); }
  void restore(const data::cursor& c) override { source_.restore(c); }
  const char* unit_name() const override { return "pairs"; }

 protected:
  // The next data.batch_size pairs (fewer at the end of a finite stream); nullopt when there are none.
  std::optional<pair_batch> next_pairs() {
    const auto pairs = read_pairs(source_, encoder_, cfg_.data.batch_size, cfg_.data.seq_len);
    if (pairs.empty()) return std::nullopt;
    const tokenizer& t = encoder_.tok();
    return make_pair_batch(pairs, t.pad_id().value_or(t.eos_id().value_or(0)));
  }

  const train_config& cfg_;

 private:
  data::record_source source_;
  const data::sample_encoder& encoder_;
};

}  // namespace mlxd::trainer
