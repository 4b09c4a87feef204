#!/usr/bin/env bash
# Data-parallel training over the comm layer: N ranks with one row each (`mlxd launch -n N -- mlxd train`)
# against one process with N rows a step. Unpacked rows longer than any verse, and no validation split
# (ranks deal the lines of the epoch's order round-robin before the split filters them), so both see the
# same rows each step; the weights and the losses agree to f32 summation order.
# Usage: data_parallel.sh MLXD WORK_DIR N
set -euo pipefail
mlxd=$1
work=$2
n=$3
source "$(dirname "$0")/run_helpers.sh"
rm -rf "$work" && mkdir -p "$work"
learn_tokenizer "$mlxd" "$work/tok"
common=(--config "$here/data/tiny.yaml" --set tokenizer="$work/tok" --set data.train="$corpus"
  --set run.save_dtype=f32 --set data.pack=false --set data.seq_len=512 --set model.config.max_position_embeddings=512
  --set data.validation_fraction=0 --set run.steps=12 --set run.checkpoint_every=0)
"$mlxd" train "${common[@]}" --set data.batch_size="$n" --out "$work/one" >"$work/one.log" 2>&1
"$mlxd" launch -n "$n" -- "$mlxd" train "${common[@]}" --set data.batch_size=1 --out "$work/ranks" \
  >"$work/ranks.log" 2>&1 || { cat "$work/ranks.log"; exit 1; }
"$here/compare_models.py" "$work/one/model/model.safetensors" "$work/ranks/model/model.safetensors" 1e-4 1e-6
losses() { grep '"loss"' "$1" | sed -E 's/.*"loss":([-0-9.e+]+).*/\1/'; }
paste <(losses "$work/one/metrics.jsonl") <(losses "$work/ranks/metrics.jsonl") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (NF != 2 || d > 1e-5 * $1) { print "losses differ: " $0; bad = 1 } }
       END { exit bad }'
echo "$n ranks match one process"
