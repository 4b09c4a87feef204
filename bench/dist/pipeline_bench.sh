#!/bin/sh
# Decode over a pipeline of local worker processes beside the same model on one node, in one run.
# Usage: bench/dist/pipeline_bench.sh [BUILD_DIR] [THREADS] [ROUNDS] [CONFIG] [TOKENS]
#   (defaults: build, 2, 2, llama_110m.json beside this script, 64 new tokens; llama_1b.json is the 1B shape)
# Every process (the single node, each worker, the coordinator) gets THREADS kernel threads. On one machine
# the split cannot be faster: a sequence's stages run one after another. Each round runs 1 node, 2 workers,
# 3 workers, then 3, 2, 1 (A B C C B A); the JSON lines give decode tokens/s, the decode round trip, the
# stages' compute time, and the time a hop adds ((round trip - compute) / stages).
set -eu
BUILD=${1:-build}
THREADS=${2:-2}
ROUNDS=${3:-2}
CONFIG=${4:-$(dirname "$0")/llama_110m.json}
TOKENS=${5:-64}
MLXD=$BUILD/bin/mlxd
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$MLXD" init --config "$CONFIG" --seed 1 --out "$WORK/model" > /dev/null
# Contiguous ranges of the decoder layers: halves, and thirds (the remainder to the last ones).
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
PROMPT=1,5,9,13,17,21,25,29,33,37,41,45,49,53,57,61
run() {
  "$MLXD" --threads "$THREADS" generate --model "$WORK/model" --tokens $PROMPT --max-tokens "$TOKENS" --json "$@"
}
r=0
while [ $r -lt "$ROUNDS" ]; do
  for n in 1 2 3 3 2 1; do
    case $n in
      1) out=$(run) ;;
      2) out=$(run --workers "$A,$B" --layers "0-$((H - 1)),$H-$((L - 1))") ;;
      3) out=$(run --workers "$A,$B,$C" --layers "0-$((T - 1)),$T-$((U - 1)),$U-$((L - 1))") ;;
    esac
    printf '{"nodes":%s,"result":%s}\n' "$n" "$out" | sed 's/"logprobs":\[[^]]*\],//; s/,"tokens":\[[^]]*\]//' |
      tee -a "$WORK/lines"
  done
  r=$((r + 1))
done
# Last line: per node count, the medians and decode tokens/s as a ratio of one node's in this run.
python3 - "$WORK/lines" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    runs.setdefault(j["nodes"], []).append(j["result"]["timings"])
med = lambda n, k: statistics.median(t.get(k, 0) for t in runs[n])
one = med(1, "decode_tokens_per_s")
print(json.dumps({"summary": {str(n): {"decode_tokens_per_s": med(n, "decode_tokens_per_s"),
                                       "ratio_vs_one_node": med(n, "decode_tokens_per_s") / one,
                                       "added_ms_per_hop": med(n, "added_ms_per_hop"),
                                       "runs": len(runs[n])} for n in sorted(runs)}}))
PY
