#!/usr/bin/env bash
# `mlxd train` as a user runs it: a tokenizer learned from the corpus, a run straight through, and the same
# run killed with SIGKILL at some step (checkpoints every step, so often during a save) and started again:
# it resumes from the last complete checkpoint and ends with the very same weights. The model generates.
# Usage: cli_train.sh MLXD WORK_DIR
set -euo pipefail
mlxd=$1
work=$2
source "$(dirname "$0")/run_helpers.sh"
rm -rf "$work" && mkdir -p "$work"
learn_tokenizer "$mlxd" "$work/tok"
train=("$mlxd" train --config "$here/data/tiny.yaml" --set tokenizer="$work/tok"
  --set data.train="$corpus" --set run.save_dtype=f32)
"${train[@]}" --out "$work/straight" >"$work/straight.log" 2>&1

# The mlxd process itself in the background (not a shell function's subshell), so SIGKILL reaches it.
"${train[@]}" --out "$work/killed" >"$work/killed1.log" 2>&1 &
pid=$!
wait_for_steps "$work/killed/metrics.jsonl" 15
kill -9 "$pid"
wait "$pid" && { echo "the run finished before it could be killed"; exit 1; } || true
[[ ! -d "$work/killed/model" ]] || { echo "a killed run wrote its model"; exit 1; }
"${train[@]}" --out "$work/killed" >"$work/killed2.log" 2>&1
grep -q "resumed from .*/checkpoints/step-" "$work/killed2.log" || { cat "$work/killed2.log"; exit 1; }
cmp "$work/straight/model/model.safetensors" "$work/killed/model/model.safetensors"
# One line per step in the resumed run's metrics, as if it had never stopped.
steps=$(grep '"loss"' "$work/killed/metrics.jsonl" | sed -E 's/.*"step":([0-9]+).*/\1/' | tr '\n' ' ')
[[ "$steps" == "$(seq -s ' ' 1 60) " ]] || { echo "metrics steps: $steps"; exit 1; }
"$mlxd" generate --model "$work/killed/model" --prompt "In the beginning" --max-tokens 8 >/dev/null
echo "resumed run matches the straight run"
