// The training loop's state and its steps: a Llama-family model (pre-trained from random weights or loaded
// to fine-tune), its data stream, optimizer and schedule, checkpoints that resume exactly, and validation.
//
// A step draws optim.accumulation micro-batches, adds the gradients of each one's summed loss (over target
// tokens for task lm, over preference pairs for dpo and reward), and divides by the units of the whole step
// (over all micro-batches and, data-parallel, all ranks), so B x 1, 1 x B and ranks x B/ranks give the same
// update. A step whose loss or gradients are not
// finite is skipped (the data it read stays consumed) and says which batch it was.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mlxd/comm/group.h"
#include "mlxd/core/array.h"
#include "mlxd/models/llama_config.h"
#include "mlxd/train/checkpoint.h"
#include "mlxd/trainer/train_config.h"

namespace mlxd::trainer {

struct step_result {
  int64_t step = 0;  // steps done after this one (1 after the first)
  double loss = 0;   // mean loss per unit (target token, pair)
  double lr = 0;
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // tokens of the step, all ranks (task lm: target tokens)
  double seconds = 0;    // wall time of the step
  double comm_seconds = 0;
  std::string skipped;  // empty, or why the update was skipped
  // The task's statistics (DPO: accuracy, margin, chosen_reward, rejected_reward; reward: accuracy,
  // chosen_reward, rejected_reward), means over the step's pairs on all ranks.
  std::vector<std::pair<std::string, double>> stats;
};

struct eval_result {
  double loss = 0;                                    // mean loss per unit (target token, pair)
  double perplexity = 0;                              // task lm: exp(loss)
  int64_t tokens = 0;                                 // units evaluated; 0: there is no validation data
  std::vector<std::pair<std::string, double>> stats;  // as step_result's
};

struct trainer_options {
  std::shared_ptr<comm::group> group;    // the data-parallel ranks; null: this process alone
  train::checkpoint_options checkpoint;  // keep_last comes from the config; tests may set after_file
};

// Where a run keeps its files.
std::filesystem::path checkpoints_dir(const train_config& c);  // <out>/checkpoints
std::filesystem::path metrics_path(const train_config& c);     // <out>/metrics.jsonl
std::filesystem::path model_dir(const train_config& c);        // <out>/model (with LoRA: adapters fused)
std::filesystem::path adapters_dir(const train_config& c);     // <out>/adapters (LoRA runs)

class trainer {
 public:
  // Loads the tokenizer and the model, opens the data and, when config.run.resume is set and a complete
  // checkpoint exists, continues from it. Throws config_error, io_error or data_error naming what is wrong.
  explicit trainer(train_config config, trainer_options options = {});
  ~trainer();
  trainer(const trainer&) = delete;
  trainer& operator=(const trainer&) = delete;

  step_result step();
  // The loss over the first run.eval_batches validation batches (all ranks).
  eval_result evaluate();
  // Writes a checkpoint of the current state (rank 0 writes; every rank must call). Returns its folder.
  std::filesystem::path save_checkpoint();
  // The current weights as a Hugging Face folder, with the tokenizer's files, in run.save_dtype (2-d weights;
  // norms stay as they are). A LoRA run also writes its adapters to adapters_dir() in PEFT's layout.
  void save_model(const std::filesystem::path& dir) const;

  int64_t steps_done() const;
  int rank() const;
  int world_size() const;
  const train_config& config() const;
  const models::llama_config& model_config() const;
  // The trained arrays: every weight, or with LoRA the adapters; a reward model's head last.
  const std::vector<std::string>& param_names() const;
  const std::vector<array>& params() const;
  // The checkpoint this trainer resumed from, if any.
  const std::optional<std::filesystem::path>& resumed_from() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace mlxd::trainer
