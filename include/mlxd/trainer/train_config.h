// The settings of a training run, read from a YAML (or JSON) file with command-line overrides.
//
//   model:    {from: DIR} to fine-tune a Hugging Face folder, or {config: FILE.json | {HF config fields}}
//             to pre-train from seeded random weights (seed: N)
//   tokenizer: DIR (default: model.from)
//   data:     {train: [FILES], validation: [FILES] | validation_fraction: F, shuffle, seed, seq_len,
//              batch_size (rows per micro-batch), pack, row_streams, kind: auto|text|completion|chat}
//   optim:    {name: adamw|adam|sgd|lion, lr, weight_decay, no_decay: [GLOBS], grad_clip (0: none),
//              accumulation (micro-batches per step)}
//   schedule: {kind: constant|warmup_cosine|linear, warmup_steps, min_lr}
//   run:      {out: DIR, steps, log_every, eval_every, eval_batches, checkpoint_every, keep_last,
//              save_dtype: f32|f16|bf16, resume}
//   lora:     {rank, alpha, dropout, targets: [q_proj, v_proj, ...]}: train adapters only, the base frozen
//   data_parallel: {bucket_mb (gradients summed in buckets of about this size), overlap: true (sum during
//              the backward pass; false: after it, the same bytes)}: only read when ranks run
//   threads:  N (0: the kernel pool's default)
//   task:     lm (next-token loss, the default) | dpo | reward | grpo | ppo: what a step optimises
//   (objective.h) dpo:      {beta, loss: sigmoid|conservative|robust|hinge|ipo, label_smoothing, reference:
//   DIR (default
//              model.from), cache_reference: true}: preference pairs against a frozen reference model
//   reward:   {center_coefficient}: a scalar head on the last token, Bradley-Terry loss on preference pairs
//   grpo:     {group_size, clip_low, clip_high, kl_beta, advantage: grpo|rloo|dr_grpo, and the rollout
//              keys}: G completions sampled from the policy for each prompt record, group-relative
//   ppo:      {epochs, minibatches, clip, value_clip, value_coef, entropy_coef, gamma, lambda, kl_beta,
//              kl_target (> 0: adaptive beta), kl_horizon, whiten_advantages, and the rollout keys}: a
//              completion per prompt, a value head, GAE, several epochs of minibatches per rollout batch
//   rollout keys (grpo and ppo): max_new_tokens, temperature, top_p, top_k, reference: DIR (default
//              model.from), reward: {kind: contains|length|regex|command, ...} or {kind: model, path: DIR}
//              (a reward model's score)
// Relative paths in a file are relative to that file's folder. Unknown keys are errors, so a misspelt
// setting is reported rather than silently ignored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlxd/models/lora.h"

namespace mlxd::trainer {

// A setting that is missing, of the wrong type, out of range, or unknown; the message names it.
class config_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct model_settings {
  std::filesystem::path from;  // a HF folder to fine-tune; empty: pre-train from `config`
  nlohmann::json config;       // HF config.json fields when pre-training
  uint64_t seed = 0;           // random initial weights
};

struct data_settings {
  std::vector<std::filesystem::path> train;
  std::vector<std::filesystem::path> validation;  // empty: a validation_fraction of `train`
  double validation_fraction = 0.0;
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t seq_len = 256;
  int64_t batch_size = 8;
  bool pack = true;
  // Each of a step's rows (over ranks, micro-batches and batch_size) packs from its own stream of records,
  // record k going to stream k mod rows-per-step, so how the rows are split over ranks and accumulation
  // does not change them (the language-model task). Each stream is its own record_source: shuffled, each
  // indexes the files once at start (32 bytes a line).
  bool row_streams = false;
  std::string kind = "auto";
};

struct optim_settings {
  std::string name = "adamw";
  double lr = 1e-3;
  double weight_decay = 0.0;
  std::vector<std::string> no_decay = {"*norm*", "*.bias"};
  double grad_clip = 1.0;
  int64_t accumulation = 1;
};

struct schedule_settings {
  std::string kind = "warmup_cosine";
  int64_t warmup_steps = 0;
  double min_lr = 0.0;
};

struct run_settings {
  std::filesystem::path out;
  int64_t steps = 0;
  int64_t log_every = 1;
  int64_t eval_every = 0;  // 0: only at the end
  int64_t eval_batches = 16;
  int64_t checkpoint_every = 0;  // 0: only at the end
  int keep_last = 3;
  std::string save_dtype = "f32";
  bool resume = true;
};

struct data_parallel_settings {
  int bucket_mb = 8;
  bool overlap = true;
};

struct dpo_settings {
  double beta = 0.1;
  std::string loss = "sigmoid";
  double label_smoothing = 0.0;
  // The frozen reference; empty: model.from (with LoRA, the base weights without the adapters).
  std::filesystem::path reference;
  // Keep the reference's log-probs of each pair on disk, keyed by the reference's and the data's hashes.
  bool cache_reference = true;
};

struct reward_settings {
  double center_coefficient = 0.0;
};

// How GRPO and PPO sample completions from the policy and score them.
struct rollout_settings {
  int max_new_tokens = 32;
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;
  std::filesystem::path reference;  // empty: model.from
  // rlhf::parse_reward_spec's spec, or {kind: model, path: DIR}; checked when the config is read.
  nlohmann::json reward;
};

struct grpo_settings {
  rollout_settings rollout;
  int group_size = 4;
  double clip_low = 0.2;
  double clip_high = 0.2;
  double kl_beta = 0.0;  // > 0: a k3 penalty toward the reference
  std::string advantage = "grpo";
};

struct ppo_settings {
  rollout_settings rollout;
  int64_t epochs = 4;       // passes over each rollout batch
  int64_t minibatches = 1;  // optimizer updates per pass; data.batch_size must divide into them
  double clip = 0.2;        // the policy ratio's clip range 1 -+ clip
  double value_clip = 0.2;  // how far a value may move from its rollout value before its loss is clipped
  double value_coef = 0.1;
  double entropy_coef = 0.0;
  double gamma = 1.0;
  double lambda = 0.95;
  double kl_beta = 0.05;   // the per-token KL penalty's coefficient (its start when adaptive)
  double kl_target = 0.0;  // > 0: beta adapts toward this mean KL per completion (Ziegler et al.)
  double kl_horizon = 10000;
  bool whiten_advantages = true;
};

struct train_config {
  std::string task = "lm";
  model_settings model;
  std::filesystem::path tokenizer;
  data_settings data;
  optim_settings optim;
  schedule_settings schedule;
  run_settings run;
  std::optional<models::lora_config> lora;  // set: LoRA fine-tuning
  data_parallel_settings data_parallel;
  int threads = 0;
  dpo_settings dpo;
  reward_settings reward;
  grpo_settings grpo;
  ppo_settings ppo;
};

// Reads FILE (YAML or JSON), applies `overrides` ("data.seq_len=128", values parsed as YAML scalars, paths
// relative to the working directory) and validates. Throws config_error.
train_config load_train_config(const std::filesystem::path& file,
                               const std::vector<std::string>& overrides = {});
// Validates an already-parsed document; relative paths resolve against `base`.
train_config parse_train_config(const nlohmann::json& doc, const std::filesystem::path& base);
// A YAML document as JSON: mappings -> objects, sequences -> arrays, plain scalars -> null, bool, integer or
// number when they read as one, else strings (quoted scalars stay strings). Throws config_error with the
// line and column of a syntax error.
nlohmann::json yaml_to_json(const std::string& text, const std::string& source);

}  // namespace mlxd::trainer
