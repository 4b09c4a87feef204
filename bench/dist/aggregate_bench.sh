#!/bin/sh
# Aggregate decode tokens/s of sequences generating at once over 2 and 3 local worker processes, each level
# beside one sequence on the same pipeline in the same run (`mlxd bench pipeline`; issue 6: at least 2x at 4
# and 8 sequences). Usage: bench/dist/aggregate_bench.sh [BUILD_DIR] [THREADS] [ROUNDS] [CONFIG] [TOKENS]
#   (defaults: build, 2, 2, llama_110m.json beside this script, 32 tokens a sequence; every worker and the
#   coordinator get THREADS kernel threads). Prints one JSON line per pipeline, then a summary line with
#   each level's ratio over its wall time and its steady decode ratio (while every sequence decodes). With
#   PIN=1 every process runs with --pin-threads.
set -eu
BUILD=${1:-build}
THREADS=${2:-2}
ROUNDS=${3:-2}
CONFIG=${4:-$(dirname "$0")/llama_110m.json}
TOKENS=${5:-32}
MLXD=$BUILD/bin/mlxd
. "$(dirname "$0")/local_workers.sh"
run() {
  "$MLXD" $PIN_FLAG --threads "$THREADS" bench pipeline --model "$WORK/model" --streams 1,4,8 --tokens "$TOKENS" \
    --rounds "$ROUNDS" "$@" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))'
}
run --workers "$A,$B" --layers "$HALVES" | tee "$WORK/2.json"
run --workers "$A,$B,$C" --layers "$THIRDS" | tee "$WORK/3.json"
python3 - "$WORK/2.json" "$WORK/3.json" <<'PY'
import json, sys
out = {}
for path, workers in zip(sys.argv[1:], ("2", "3")):
    d = json.load(open(path))
    out[workers] = {str(l["streams"]): round(l["ratio_vs_one_stream"], 2) for l in d["levels"]}
    out[workers]["one_stream_tokens_per_s"] = round(d["levels"][0]["tokens_per_s"], 1)
    out[workers]["steady_decode"] = {str(l["streams"]): round(l["steady_ratio_vs_one_stream"], 2) for l in d["levels"]}
print(json.dumps({"summary_ratio_vs_one_stream": out}))
PY
