#!/usr/bin/env bash
# DPO data-parallel: 2 ranks with one preference pair each (`mlxd launch -n 2 -- mlxd rlhf dpo`) against one
# process with two pairs a step, from the same tiny base model: the loss is a mean over the step's pairs on
# all ranks, so the weights, losses and margins agree to f32 summation order. A margin is a difference of
# log-prob sums near -100, so it carries absolute errors of about 1e-5 (f32's epsilon times the sums),
# which Adam's normalised steps pass on to the weights at lr x 1e-1 or so.
# Usage: dpo_data_parallel.sh MLXD WORK_DIR
set -euo pipefail
mlxd=$1
work=$2
source "$(dirname "$0")/run_helpers.sh"
rm -rf "$work" && mkdir -p "$work"
tiny_base "$mlxd" "$work"
common=(--config "$here/data/dpo.yaml" --set model.from="$work/base/model" --set data.seq_len=64
  --set data.validation_fraction=0 --set run.steps=6 --set run.eval_every=0 --set threads=1)
"$mlxd" rlhf dpo "${common[@]}" --set data.batch_size=2 --out "$work/one" >"$work/one.log" 2>&1 ||
  { cat "$work/one.log"; exit 1; }
"$mlxd" launch -n 2 -- "$mlxd" rlhf dpo "${common[@]}" --set data.batch_size=1 --out "$work/ranks" \
  >"$work/ranks.log" 2>&1 || { cat "$work/ranks.log"; exit 1; }
"$here/compare_models.py" "$work/one/model/model.safetensors" "$work/ranks/model/model.safetensors" 1e-4 2e-5
same_metrics 1e-5 "$work/one/metrics.jsonl" "$work/ranks/metrics.jsonl" loss margin

# A config whose task is another command's is refused, naming the command to run.
if "$mlxd" rlhf reward "${common[@]}" --set task=dpo --out "$work/wrong" 2>"$work/wrong.err"; then
  echo "rlhf reward ran a dpo config"
  exit 1
fi
grep -q 'sets task: dpo; run `mlxd rlhf dpo`' "$work/wrong.err" || { cat "$work/wrong.err"; exit 1; }
echo "2 ranks match one process; a mismatched task is refused"
