#!/usr/bin/env bash
# `mlxd rlhf` end to end on the shipped default model with pairs of true verse endings over shuffled ones
# (tests/trainer/data/pairs.jsonl): a reward model beats chance clearly on held-out pairs and `mlxd rlhf
# score` agrees with it; DPO raises the held-out chosen-minus-rejected margin from 0; GRPO rewarded for
# writing "LORD" raises the mean reward of its samples from about 0.1 to near 1, and GRPO scored by the
# reward model raises that model's score of its samples; PPO on the same word raises its reward too, with
# its KL coefficient adapting. Curves are plotted.
# Usage: rlhf_default_model.sh MLXD WORK_DIR
set -euo pipefail
mlxd=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
model=$here/../../models/default
rm -rf "$work" && mkdir -p "$work"

# The last validation line's value of KEY in a metrics log.
last_val() { grep '"val_loss"' "$1" | tail -1 | sed -E "s/.*\"$2\":([-0-9.e+]+).*/\1/"; }
check() { python3 -c "import sys; sys.exit(0 if $1 else 1)" || { echo "failed: $2 ($1)"; exit 1; }; }

"$mlxd" rlhf reward --config "$here/data/reward.yaml" --set model.from="$model" --out "$work/reward" \
  >"$work/reward.log" 2>&1 || { cat "$work/reward.log"; exit 1; }
acc=$(last_val "$work/reward/metrics.jsonl" val_accuracy)
echo "reward model: held-out accuracy $acc"
check "$acc >= 0.8" "reward accuracy on held-out pairs"
grep -q '"LlamaForSequenceClassification"' "$work/reward/model/config.json"

# `mlxd rlhf score` ranks the pairs as the trained model does: most chosen responses score higher.
"$mlxd" rlhf score --model "$work/reward/model" --data "$here/data/pairs.jsonl" --out "$work/scores.jsonl"
[[ $(wc -l <"$work/scores.jsonl") == $(wc -l <"$here/data/pairs.jsonl") ]]
wins=$(python3 -c "
import json
rows = [json.loads(l) for l in open('$work/scores.jsonl')]
print(sum(r['chosen_score'] > r['rejected_score'] for r in rows) / len(rows))")
echo "score: chosen above rejected in $wins of the pairs"
check "$wins >= 0.8" "score ranking"

"$mlxd" rlhf dpo --config "$here/data/dpo.yaml" --set model.from="$model" --out "$work/dpo" \
  >"$work/dpo.log" 2>&1 || { cat "$work/dpo.log"; exit 1; }
first=$(grep '"val_loss"' "$work/dpo/metrics.jsonl" | head -1 | sed -E 's/.*"val_margin":([-0-9.e+]+).*/\1/')
margin=$(last_val "$work/dpo/metrics.jsonl" val_margin)
dacc=$(last_val "$work/dpo/metrics.jsonl" val_accuracy)
echo "dpo: held-out margin $first after 5 steps, $margin at the end; accuracy $dacc"
check "$margin > 0.5 and $margin > $first" "dpo held-out margin"
check "$dacc >= 0.8" "dpo held-out accuracy"
steps() { grep -o "\"$2\":[-0-9.e+]*" "$1" | sed 's/.*://'; }
"$mlxd" rlhf grpo --config "$here/data/grpo.yaml" --set model.from="$model" --out "$work/grpo" \
  >"$work/grpo.log" 2>&1 || { cat "$work/grpo.log"; exit 1; }
rewards=($(steps "$work/grpo/metrics.jsonl" reward))
early=$(python3 -c "print(sum([${rewards[0]}, ${rewards[1]}, ${rewards[2]}]) / 3)")
late=$(python3 -c "print(sum([${rewards[-1]}, ${rewards[-2]}, ${rewards[-3]}]) / 3)")
echo "grpo: mean reward $early over the first 3 steps, $late over the last 3"
check "$early < 0.4 and $late > 0.7" "grpo reward"
# GRPO with the reward model trained above as its reward: the policy's samples score higher.
"$mlxd" rlhf grpo --config "$here/data/grpo.yaml" --set model.from="$model" --set run.steps=6 \
  --set "grpo.reward={kind: model, path: $work/reward/model}" --set grpo.kl_beta=0 --out "$work/grpo_rm" \
  >"$work/grpo_rm.log" 2>&1 || { cat "$work/grpo_rm.log"; exit 1; }
rewards=($(steps "$work/grpo_rm/metrics.jsonl" reward))
echo "grpo with the reward model: mean reward ${rewards[0]} at the first step, ${rewards[-1]} at the last"
check "${rewards[-1]} > ${rewards[0]}" "grpo reward-model reward"
# PPO with one completion per prompt, a value head and an adaptive KL penalty, on the same reward.
"$mlxd" rlhf ppo --config "$here/data/ppo.yaml" --set model.from="$model" --out "$work/ppo" \
  >"$work/ppo.log" 2>&1 || { cat "$work/ppo.log"; exit 1; }
rewards=($(steps "$work/ppo/metrics.jsonl" reward))
betas=($(steps "$work/ppo/metrics.jsonl" kl_beta))
early=$(python3 -c "print(sum([${rewards[0]}, ${rewards[1]}, ${rewards[2]}]) / 3)")
late=$(python3 -c "print(sum([${rewards[-1]}, ${rewards[-2]}, ${rewards[-3]}]) / 3)")
echo "ppo: mean reward $early over the first 3 steps, $late over the last 3; kl_beta ${betas[0]} -> ${betas[-1]}"
check "$early < 0.4 and $late > 0.6" "ppo reward"
check "${betas[-1]} != ${betas[0]}" "ppo adaptive kl_beta"
# The policies still generate, and the curves plot.
"$mlxd" generate --model "$work/dpo/model" --prompt "In the beginning" --max-tokens 8 >/dev/null
"$mlxd" plot "$work/reward/metrics.jsonl" -o "$work/reward.svg" >/dev/null
"$mlxd" plot "$work/dpo/metrics.jsonl" -o "$work/dpo.svg" >/dev/null
"$mlxd" plot "$work/grpo/metrics.jsonl" -o "$work/grpo.svg" >/dev/null
"$mlxd" plot "$work/ppo/metrics.jsonl" -o "$work/ppo.svg" >/dev/null
"$mlxd" generate --model "$work/grpo/model" --prompt "And God said" --max-tokens 8 >/dev/null
