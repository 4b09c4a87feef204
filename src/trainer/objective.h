// What a training step minimises: the next-token loss (task lm), DPO or a reward model's Bradley-Terry loss
// on preference pairs, or GRPO on completions sampled from the policy. An objective reads this rank's records
// and turns each micro-batch into a function of the trained arrays giving the loss SUMMED over its units
// (target tokens, pairs), so the trainer can divide by the units of the whole step (all micro-batches, all
// ranks) and any split gives the same update. Internal to the trainer module.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/data/record_source.h"
#include "mlxd/data/sample_encoder.h"
#include "mlxd/models/llama_train.h"
#include "mlxd/trainer/train_config.h"

namespace mlxd::trainer {

// The policy as an objective sees it: the logits [B, T, V] (hidden = false) or the final-norm hidden states
// [B, T, H] (hidden = true) of a batch for the trained arrays p, in param_names' order.
struct policy_view {
  std::function<array(const std::vector<array>& p, const models::train_batch& batch, bool hidden)> forward;
  // Every weight of the model by HF name for the trained arrays p (with LoRA: the adapters fused in), to
  // generate from.
  std::function<std::map<std::string, array>(const std::vector<array>& p)> weights;
  // The current trained arrays, the step (0-based) and this micro-batch's index, for rollouts.
  const std::vector<array>* params = nullptr;
  int64_t step = 0;
  int64_t micro = 0;
  std::vector<std::string> param_names;
  models::llama_config model;
};

// A statistic reported beside the loss: a sum over the step, divided by its units, or by the statistic at
// index `per` (a count such as completions) when per >= 0, or reported as the sum itself when total is set.
struct stat_spec {
  std::string name;
  int per = -1;
  bool total = false;
};

struct micro_batch {
  // The summed loss for the trained arrays; adds this micro-batch's sums to `stats` (one per stat_spec).
  std::function<array(const std::vector<array>& p, std::vector<double>& stats)> loss_sum;
  double units = 0;    // what the loss is summed over
  int64_t tokens = 0;  // tokens the forward reads, for throughput
};

class objective {
 public:
  virtual ~objective() = default;
  // The next micro-batch of the stream; nullopt when it ended (a validation pass).
  virtual std::optional<micro_batch> next(const policy_view& policy) = 0;
  virtual data::cursor position() const = 0;
  virtual void restore(const data::cursor& c) = 0;
  // What the step divides by ("target tokens", "pairs"), for messages.
  virtual const char* unit_name() const = 0;
  virtual std::vector<stat_spec> stats() const = 0;
};

// Frozen weights an objective may share rather than load again (with LoRA: the base, which is also the
// DPO reference when dpo.reference is model.from).
struct shared_weights {
  const std::map<std::string, array>* base = nullptr;
};

// The objective of c.task over `source`, encoding with `encoder` (which outlives it).
std::unique_ptr<objective> make_objective(const train_config& c, data::source_options source,
                                          const data::sample_encoder& encoder, const shared_weights& shared,
                                          int rank);

// Extra trained arrays the task adds to the model's (the reward head), with their initial values.
std::vector<std::pair<std::string, array>> task_params(const train_config& c, const models::llama_config& m);

}  // namespace mlxd::trainer
