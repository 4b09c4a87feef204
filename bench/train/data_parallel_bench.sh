#!/usr/bin/env bash
# Data-parallel training on one machine: the issue's ~15M-parameter Llama (dim 288, 6 layers, vocab 32000,
# seq 256, 8 rows a step, AdamW) trained by `mlxd train` as 1 rank with 2 threads and as 2 ranks
# (`mlxd launch -n 2`) with 1 thread and 4 rows each: the same total threads and rows. Prints JSON with each
# run's tokens/s (median over the steps after warm-up), the 2-rank figure as a ratio of the 1-rank one,
# and the share of step time spent in gradient all-reduce; then the 2 ranks again with the sum after the
# backward pass (data_parallel.overlap=false), whose tokens/s the overlapped run's are divided by.
# Usage: bench/train/data_parallel_bench.sh [MLXD] [STEPS]   (default build/bin/mlxd, 12 steps)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mlxd=${1:-$root/build/bin/mlxd}
steps=${2:-12}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=$root/tests/trainer/data/corpus.txt
"$mlxd" tokenizer train --corpus "$corpus" --vocab-size 512 --out "$work/tok" >/dev/null
cat >"$work/run.yaml" <<YAML
model:
  seed: 1
  config: {architectures: [LlamaForCausalLM], vocab_size: 32000, hidden_size: 288, intermediate_size: 768,
           num_hidden_layers: 6, num_attention_heads: 6, max_position_embeddings: 256, tie_word_embeddings: true}
tokenizer: $work/tok
data: {train: [$corpus], seq_len: 256, batch_size: 8, seed: 1}
optim: {name: adamw, lr: 1.0e-3, weight_decay: 0.1}
schedule: {kind: constant}
run: {out: $work/one, steps: $steps, eval_batches: 1, save_dtype: f32}
YAML
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_WAIT_POLICY=PASSIVE
OPENBLAS_NUM_THREADS=2 "$mlxd" train --config "$work/run.yaml" --set threads=2 >/dev/null 2>&1
OPENBLAS_NUM_THREADS=1 "$mlxd" launch -n 2 -- "$mlxd" train --config "$work/run.yaml" --set threads=1 \
  --set data.batch_size=4 --out "$work/two" >/dev/null 2>&1
OPENBLAS_NUM_THREADS=1 "$mlxd" launch -n 2 -- "$mlxd" train --config "$work/run.yaml" --set threads=1 \
  --set data.batch_size=4 --set data_parallel.overlap=false --out "$work/after" >/dev/null 2>&1
/usr/bin/python3 - "$work/one/metrics.jsonl" "$work/two/metrics.jsonl" "$work/after/metrics.jsonl" <<'PY'
import json, statistics, sys

def summary(path):
    steps = [json.loads(l) for l in open(path) if '"loss"' in l]
    steps = steps[2:]  # warm-up: allocator pools, OpenBLAS buffers, the gRPC channels
    step_s = statistics.median(s["tokens"] / s["tokens_per_s"] for s in steps)
    return {"tokens_per_s": statistics.median(s["tokens_per_s"] for s in steps),
            "comm_share": statistics.median(s["comm_s"] for s in steps) / step_s,
            "steps_measured": len(steps)}

one, two, after = summary(sys.argv[1]), summary(sys.argv[2]), summary(sys.argv[3])
print(json.dumps({"benchmark": "data_parallel_train",
                  "model": {"dim": 288, "layers": 6, "vocab": 32000, "seq": 256, "rows_per_step": 8},
                  "one_rank_two_threads": one, "two_ranks_one_thread_each": two,
                  "two_ranks_sum_after_backward": after,
                  "two_ranks_vs_one": two["tokens_per_s"] / one["tokens_per_s"],
                  "overlap_vs_sum_after": two["tokens_per_s"] / after["tokens_per_s"]}, indent=1))
PY
