#!/usr/bin/env bash
# GRPO and PPO data-parallel: 2 ranks with one prompt each (`mlxd launch -n 2 -- mlxd rlhf grpo|ppo`)
# against one process with two prompts a step, from the same tiny base model. Rollouts draw their seeds from
# each prompt's file and line, so the ranks sample what the one process samples; losses are summed over the
# completion tokens of all ranks before dividing, PPO whitens its advantages over all ranks, and PPO's one
# minibatch a pass is the whole batch. So weights and per-step losses and rewards agree to f32 summation order.
# Usage: rollout_data_parallel.sh MLXD WORK_DIR
set -euo pipefail
mlxd=$1
work=$2
source "$(dirname "$0")/run_helpers.sh"
rm -rf "$work" && mkdir -p "$work"
tiny_base "$mlxd" "$work"
printf '%s\n' '{"prompt": "And God said"}' '{"prompt": "In the beginning"}' '{"prompt": "And the earth"}' \
  '{"prompt": "And God saw"}' >"$work/prompts.jsonl"

# compare TASK KEY...: the two runs of TASK have the same weights and, per step, the same values of KEYs.
compare() {
  local task=$1
  shift
  "$here/compare_models.py" "$work/$task-one/model/model.safetensors" "$work/$task-ranks/model/model.safetensors" \
    1e-4 2e-5
  same_metrics 1e-4 "$work/$task-one/metrics.jsonl" "$work/$task-ranks/metrics.jsonl" "$@"
}

# run TASK SETTINGS...: TASK with 2 prompts a step in one process and 1 prompt on each of 2 ranks.
run() {
  local task=$1
  shift
  local common=(--set model.from="$work/base/model" --set data.train="$work/prompts.jsonl" --set run.steps=4
    --set run.save_dtype=f32 --set threads=1 --set optim.lr=3e-3 --set schedule.kind=constant "$@")
  "$mlxd" rlhf "$task" "${common[@]}" --set data.batch_size=2 --out "$work/$task-one" >"$work/$task-one.log" 2>&1 ||
    { cat "$work/$task-one.log"; exit 1; }
  "$mlxd" launch -n 2 -- "$mlxd" rlhf "$task" "${common[@]}" --set data.batch_size=1 --out "$work/$task-ranks" \
    >"$work/$task-ranks.log" 2>&1 || { cat "$work/$task-ranks.log"; exit 1; }
}

printf 'task: grpo\ngrpo: {group_size: 4, max_new_tokens: 8, kl_beta: 0.05, reward: {kind: length, target: 24, unit: characters}}\n' \
  >"$work/grpo.yaml"
run grpo --config "$work/grpo.yaml"
compare grpo loss reward completion_length kl
printf 'task: ppo\nppo: {max_new_tokens: 8, epochs: 2, minibatches: 1, kl_beta: 0.05, kl_target: 0.5, kl_horizon: 20, reward: {kind: length, target: 24, unit: characters}}\n' \
  >"$work/ppo.yaml"
run ppo --config "$work/ppo.yaml"
compare ppo loss reward completion_length kl kl_beta value_loss
echo "GRPO and PPO on 2 ranks match one process"
