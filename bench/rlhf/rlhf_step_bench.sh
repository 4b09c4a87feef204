#!/usr/bin/env bash
# The step time of each RLHF task on the default model beside a plain fine-tuning step in the same run:
# 8 prompt/chosen completions a step (task lm, the baseline), a reward-model step on 8 pairs (16 rows), a DPO
# step on 8 pairs with the reference forward (cache off, so every step pays it), and a GRPO step on 8
# prompts x 4 completions of up to 16 tokens (rollouts on the inference path, reward, update), and a PPO step
# on 8 prompts x 1 completion of up to 16 tokens (rollouts, reward, reference and value forwards, then 2
# epochs x 2 minibatches = 4 updates). Prints JSON:
# each task's median seconds per step after warm-up and its ratio to the baseline's.
# Usage: bench/rlhf/rlhf_step_bench.sh [MLXD] [STEPS]   (default build/bin/mlxd, 10 steps)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mlxd=${1:-$root/build/bin/mlxd}
steps=${2:-10}
data=$root/tests/trainer/data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$data/pairs.jsonl" >"$work/completions.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({"prompt": r["prompt"], "completion": r["chosen"]}))
PY
common=(--set model.from="$root/models/default" --set run.steps="$steps" --set run.eval_every=0
  --set data.validation_fraction=0 --set threads=2)
"$mlxd" train --config "$data/dpo.yaml" "${common[@]}" --set data.train="$work/completions.jsonl" \
  --set data.pack=false --set task=lm --out "$work/lm" >/dev/null 2>&1
"$mlxd" rlhf reward --config "$data/reward.yaml" "${common[@]}" --out "$work/reward" >/dev/null 2>&1
"$mlxd" rlhf dpo --config "$data/dpo.yaml" "${common[@]}" --set dpo.cache_reference=false \
  --out "$work/dpo" >/dev/null 2>&1
"$mlxd" rlhf grpo --config "$data/grpo.yaml" "${common[@]}" --out "$work/grpo" >/dev/null 2>&1
"$mlxd" rlhf ppo --config "$data/ppo.yaml" "${common[@]}" --set data.batch_size=8 --out "$work/ppo" >/dev/null 2>&1
/usr/bin/python3 - "$work" <<'PY'
import json, statistics, sys

def step_seconds(run):
    steps = [json.loads(l) for l in open(f"{sys.argv[1]}/{run}/metrics.jsonl") if '"loss"' in l][2:]
    return statistics.median(s["tokens"] / s["tokens_per_s"] for s in steps)

base = step_seconds("lm")
out = {"baseline_lm_step_s": base}
for run in ("reward", "dpo", "grpo", "ppo"):
    s = step_seconds(run)
    out[run] = {"step_s": s, "ratio_to_lm_step": s / base}
print(json.dumps(out, indent=2))
PY
