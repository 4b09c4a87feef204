#!/bin/sh
# Decode over a pipeline of local worker processes beside the same model on one node, in one run.
# Usage: bench/dist/pipeline_bench.sh [BUILD_DIR] [THREADS] [ROUNDS]   (defaults: build, 2, 2)
# Every process (the single node, each worker, the coordinator) gets THREADS kernel threads. On one machine
# the split cannot be faster: a sequence's stages run one after another. Each round runs 1 node, 2 workers,
# 3 workers, then 3, 2, 1 (A B C C B A); the JSON lines give decode tokens/s, the decode round trip, the
# stages' compute time, and the time a hop adds ((round trip - compute) / stages).
set -eu
BUILD=${1:-build}
THREADS=${2:-2}
ROUNDS=${3:-2}
MLXD=$BUILD/bin/mlxd
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$MLXD" init --config "$(dirname "$0")/llama_110m.json" --seed 1 --out "$WORK/model" > /dev/null
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
  "$MLXD" --threads "$THREADS" generate --model "$WORK/model" --tokens $PROMPT --max-tokens 64 --json "$@"
}
r=0
while [ $r -lt "$ROUNDS" ]; do
  for n in 1 2 3 3 2 1; do
    case $n in
      1) out=$(run) ;;
      2) out=$(run --workers "$A,$B" --layers 0-5,6-11) ;;
      3) out=$(run --workers "$A,$B,$C" --layers 0-3,4-7,8-11) ;;
    esac
    printf '{"nodes":%s,"result":%s}\n' "$n" "$out" | sed 's/"logprobs":\[[^]]*\],//; s/,"tokens":\[[^]]*\]//'
  done
  r=$((r + 1))
done
