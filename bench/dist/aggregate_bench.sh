#!/bin/sh
# Aggregate decode tokens/s of sequences generating at once over 2 and 3 local worker processes, each level
# beside one sequence on the same pipeline in the same run (`mlxd bench pipeline`; issue 6: at least 2x at 4
# and 8 sequences). Usage: bench/dist/aggregate_bench.sh [BUILD_DIR] [THREADS] [ROUNDS] [CONFIG] [TOKENS]
#   (defaults: build, 2, 2, llama_110m.json beside this script, 32 tokens a sequence; every worker and the
#   coordinator get THREADS kernel threads). Prints one JSON line per pipeline, then a summary line.
set -eu
BUILD=${1:-build}
THREADS=${2:-2}
ROUNDS=${3:-2}
CONFIG=${4:-$(dirname "$0")/llama_110m.json}
TOKENS=${5:-32}
MLXD=$BUILD/bin/mlxd
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$MLXD" init --config "$CONFIG" --seed 1 --out "$WORK/model" > /dev/null
L=$(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$CONFIG")
H=$((L / 2)) T=$((L / 3)) U=$((L - (L - L / 3) / 2))
for w in a b c; do
  MLXD_NUM_THREADS=$THREADS "$MLXD" worker --host 127.0.0.1 --port 0 --port-file "$WORK/$w.port" > /dev/null &
  echo $! > "$WORK/$w.pid"
done
for w in a b c; do
  while [ ! -f "$WORK/$w.port" ]; do sleep 0.1; done
done
A=127.0.0.1:$(cat "$WORK/a.port")
B=127.0.0.1:$(cat "$WORK/b.port")
C=127.0.0.1:$(cat "$WORK/c.port")
run() {
  "$MLXD" --threads "$THREADS" bench pipeline --model "$WORK/model" --streams 1,4,8 --tokens "$TOKENS" \
    --rounds "$ROUNDS" "$@" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))'
}
run --workers "$A,$B" --layers "0-$((H - 1)),$H-$((L - 1))" | tee "$WORK/2.json"
run --workers "$A,$B,$C" --layers "0-$((T - 1)),$T-$((U - 1)),$U-$((L - 1))" | tee "$WORK/3.json"
python3 - "$WORK/2.json" "$WORK/3.json" <<'PY'
import json, sys
out = {}
for path, workers in zip(sys.argv[1:], ("2", "3")):
    d = json.load(open(path))
    out[workers] = {str(l["streams"]): round(l["ratio_vs_one_stream"], 2) for l in d["levels"]}
    out[workers]["one_stream_tokens_per_s"] = round(d["levels"][0]["tokens_per_s"], 1)
print(json.dumps({"summary_ratio_vs_one_stream": out}))
PY
