// What a training step minimises: the next-token loss (task lm), DPO or a reward model's Bradley-Terry loss
// on preference pairs, or GRPO on completions sampled from the policy. An objective reads this rank's records
// and turns each micro-batch into a function of the trained arrays giving the loss SUMMED over its units
// (target tokens, pairs), so the trainer can divide by the units of the whole step (all micro-batches, all
// ranks) and any split gives the same update. Internal to the trainer module.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
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
  // The logits [B, T, V] and the final-norm hidden states [B, T, H] of one forward (PPO's policy and value);
  // `training` false turns LoRA dropout off (values computed at rollout time).
  std::function<std::pair<array, array>(const std::vector<array>& p, const models::train_batch& batch,
                                        bool training)>
      forward_both;
  // Sums per-rank values over the ranks of the run (the values themselves with one); every rank must call it
  // at the same point, as with any collective.
  std::function<std::vector<double>(const std::vector<double>& values)> sum_over_ranks;
  // Every weight of the model by HF name for the trained arrays p (with LoRA: the adapters fused in), to
  // generate from.
  std::function<std::map<std::string, array>(const std::vector<array>& p)> weights;
  // The current trained arrays, the step (0-based) and this micro-batch's index, for rollouts.
  const std::vector<array>* params = nullptr;
  int64_t step = 0;
  int64_t micro = 0;
  bool training = true;  // false: a validation pass
  std::vector<std::string> param_names;
  models::llama_config model;
};

// A statistic reported beside the loss: a sum over the step, divided by its units, or by the statistic at
// index `per` (a count such as completions) when per >= 0, or reported as the sum itself when total is set.
// An extreme (reduce min or max) is the least or greatest value over the step's micro-batches and ranks,
// starting from +inf / -inf; one that saw no value is not reported.
struct stat_spec {
  enum class reduce { sum, min, max };
  std::string name;
  int per = -1;
  bool total = false;
  reduce kind = reduce::sum;
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
  // Where the next micro-batch's data starts (for messages; the first of several streams).
  virtual data::cursor position() const = 0;
  virtual void restore(const data::cursor& c) = 0;
  // Every stream's cursor, for checkpoints: one unless the objective reads several (data.row_streams).
  // restore_all takes as many as cursors() gives and throws config_error for another count.
  virtual std::vector<data::cursor> cursors() const { return {position()}; }
  virtual void restore_all(const std::vector<data::cursor>& c);
  // What the step divides by ("target tokens", "pairs"), for messages.
  virtual const char* unit_name() const = 0;
  virtual std::vector<stat_spec> stats() const = 0;
  // Optimizer updates a step makes, each from optim.accumulation micro-batches (PPO: several epochs of
  // minibatches over one rollout batch).
  virtual int64_t updates_per_step() const { return 1; }
  // State beyond the data cursor that a checkpoint keeps (a KL controller, the reference's hash), the same
  // on every rank; restore_state throws config_error when it does not fit this run.
  virtual nlohmann::json state() const { return nullptr; }
  virtual void restore_state(const nlohmann::json& /*state*/) {}
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

// Extra trained arrays the task adds to the model's (the reward head, PPO's value head), with their initial
// values.
std::vector<std::pair<std::string, array>> task_params(const train_config& c, const models::llama_config& m);
// Whether a task array belongs in the saved model folder (the reward head does; the value head does not).
bool task_param_is_saved(const std::string& name);

}  // namespace mlxd::trainer
