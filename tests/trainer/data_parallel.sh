#!/usr/bin/env bash
# Data-parallel training over the comm layer: N ranks with one row each (`mlxd launch -n N -- mlxd train`)
# against one process with N rows a step, and with a validation split (it filters the lines before the ranks
# deal them round-robin). MODE unpacked: rows longer than any verse, one verse each, so both see the same
# rows. MODE packed: 32-token rows packed from several verses with data.row_streams, where each row of a
# step (and of a validation batch) packs from its own stream of verses whatever the split. Either way the
# weights and the training and validation losses agree to f32 summation order. (trainer_test holds row
# streams to the same across accumulation splits.) Unpacked, the ranks also run with the gradient sum after the
# backward pass instead of during it (data_parallel.overlap=false): the weights must be the same bytes.
# Usage: data_parallel.sh MLXD WORK_DIR N [unpacked|packed]
set -euo pipefail
mlxd=$1
work=$2
n=$3
mode=${4:-unpacked}
source "$(dirname "$0")/run_helpers.sh"
rm -rf "$work" && mkdir -p "$work"
learn_tokenizer "$mlxd" "$work/tok"
common=(--config "$here/data/tiny.yaml" --set tokenizer="$work/tok" --set data.train="$corpus"
  --set run.save_dtype=f32 --set data.validation_fraction=0.1 --set run.steps=12 --set run.eval_every=6
  --set run.checkpoint_every=0)
if [ "$mode" = packed ]; then
  common+=(--set data.pack=true --set data.row_streams=true --set data.seq_len=32)
else
  common+=(--set data.pack=false --set data.seq_len=512 --set model.config.max_position_embeddings=512)
fi
"$mlxd" train "${common[@]}" --set data.batch_size="$n" --out "$work/one" >"$work/one.log" 2>&1
"$mlxd" launch -n "$n" -- "$mlxd" train "${common[@]}" --set data.batch_size=1 --out "$work/ranks" \
  >"$work/ranks.log" 2>&1 || { cat "$work/ranks.log"; exit 1; }
"$here/compare_models.py" "$work/one/model/model.safetensors" "$work/ranks/model/model.safetensors" 1e-4 1e-6
if [ "$mode" = unpacked ]; then
  "$mlxd" launch -n "$n" -- "$mlxd" train "${common[@]}" --set data.batch_size=1 --set data_parallel.overlap=false \
    --out "$work/after" >"$work/after.log" 2>&1 || { cat "$work/after.log"; exit 1; }
  cmp "$work/ranks/model/model.safetensors" "$work/after/model/model.safetensors" ||
    { echo "summing after the backward pass changed the weights"; exit 1; }
fi
# KEY's values in a run's metrics, one a line: "loss" for every step, "val_loss" at each evaluation.
values() { grep "\"$2\"" "$1" | sed -E "s/.*\"$2\":([-0-9.e+]+).*/\1/"; }
for key in loss val_loss; do
  [ "$(values "$work/one/metrics.jsonl" "$key" | wc -l)" -ge 2 ] || { echo "no $key lines"; exit 1; }
  paste <(values "$work/one/metrics.jsonl" "$key") <(values "$work/ranks/metrics.jsonl" "$key") |
    awk -v key="$key" '{ d = $1 - $2; if (d < 0) d = -d; if (NF != 2 || d > 1e-5 * $1) { print key " differ: " $0; bad = 1 } }
         END { exit bad }'
done
echo "$n ranks match one process ($mode rows)"
