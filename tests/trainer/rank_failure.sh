#!/usr/bin/env bash
# A data-parallel run loses a rank (SIGKILL): the run stops within seconds with an error that names it, and
# the same command started again resumes from the last complete checkpoint and ends with the very weights
# of a run that never failed.
# Usage: rank_failure.sh MLXD WORK_DIR
set -euo pipefail
mlxd=$1
work=$2
source "$(dirname "$0")/run_helpers.sh"
rm -rf "$work" && mkdir -p "$work"
learn_tokenizer "$mlxd" "$work/tok"
run=("$mlxd" launch -n 2 -- "$mlxd" train --config "$here/data/tiny.yaml" --set tokenizer="$work/tok"
  --set data.train="$corpus" --set run.save_dtype=f32 --set run.steps=80 --set run.checkpoint_every=5)
"${run[@]}" --out "$work/straight" >"$work/straight.log" 2>&1

"${run[@]}" --out "$work/failed" >"$work/failed.log" 2>&1 &
launcher=$!
wait_for_steps "$work/failed/metrics.jsonl" 12
ranks=($(cat /proc/"$launcher"/task/*/children))
((${#ranks[@]} == 2)) || { echo "expected 2 ranks under the launcher, found: ${ranks[*]}"; exit 1; }
kill -9 "${ranks[1]}"
killed_at=$(date +%s%N)
status=0
wait "$launcher" || status=$?
seconds=$(( ($(date +%s%N) - killed_at) / 1000000000 ))
((status != 0)) || { echo "the run succeeded without a rank"; exit 1; }
((seconds <= 10)) || { echo "the run took ${seconds}s to stop"; exit 1; }
grep -qi "rank 1" "$work/failed.log" || { cat "$work/failed.log"; exit 1; }

"${run[@]}" --out "$work/failed" >"$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; exit 1; }
grep -q "resumed from" "$work/resumed.log" || { cat "$work/resumed.log"; exit 1; }
cmp "$work/straight/model/model.safetensors" "$work/failed/model/model.safetensors"
echo "stopped ${seconds}s after losing a rank; the resumed run matches"
