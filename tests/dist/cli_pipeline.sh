#!/bin/sh
# `mlxd generate --workers` over two real worker processes prints what one node prints, `mlxd cluster
# status` shows both workers with their layers, and `mlxd bench pipeline` runs over them.
# Usage: cli_pipeline.sh MLXD MODEL_DIR WORK_DIR
set -eu
MLXD=$1
MODEL=$2
WORK=$3
mkdir -p "$WORK"
rm -f "$WORK"/a.port "$WORK"/b.port
"$MLXD" worker --host 127.0.0.1 --port 0 --port-file "$WORK/a.port" &
A=$!
"$MLXD" worker --host 127.0.0.1 --port 0 --port-file "$WORK/b.port" &
B=$!
trap 'kill $A $B 2>/dev/null || true' EXIT
for f in a b; do
  i=0
  while [ ! -f "$WORK/$f.port" ]; do
    sleep 0.05
    i=$((i + 1))
    [ $i -lt 1200 ] || { echo "worker $f did not start"; exit 1; }
  done
done
W=127.0.0.1:$(cat "$WORK/a.port"),127.0.0.1:$(cat "$WORK/b.port")
alone=$("$MLXD" generate --model "$MODEL" --tokens 3,17,5 --max-tokens 8 --temperature 0.8 --seed 4)
split=$("$MLXD" generate --model "$MODEL" --tokens 3,17,5 --max-tokens 8 --temperature 0.8 --seed 4 --workers "$W" \
  --layers 0,1)
echo "one node: $alone"
echo "two workers: $split"
[ "$alone" = "$split" ] || { echo "the tokens differ"; exit 1; }
# With --json the timings give each stage's compute a token, in pipeline order, and their sum.
"$MLXD" generate --model "$MODEL" --tokens 3,17,5 --max-tokens 8 --workers "$W" --layers 0,1 --json \
  >"$WORK/generate.json"
python3 - "$WORK/generate.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["timings"]
stages = t["decode_stage_ms"]
assert len(stages) == 2 and all(ms > 0 for ms in stages), t
assert abs(sum(stages) - t["decode_compute_ms"]) <= 1e-6 * t["decode_compute_ms"], t
PY
"$MLXD" cluster status --workers "$W"
# `mlxd bench pipeline` over the same workers: both levels make all their tokens (it fails otherwise) and
# stream 0 generates among two others what it generates alone.
"$MLXD" bench pipeline --model "$MODEL" --workers "$W" --layers 0,1 --streams 3 --tokens 4 --rounds 1 >"$WORK/bench.json"
python3 - "$WORK/bench.json" <<'PY'
import json, sys
levels = {l["streams"]: l for l in json.load(open(sys.argv[1]))["levels"]}
assert sorted(levels) == [1, 3], levels
for l in levels.values():
    assert l["tokens_per_s"] > 0 and l["same_tokens_as_alone"], l
    assert l["steady_decode_tokens_per_s"] >= 0, l
# One sequence's steady window runs from its first token to its last, so it is never empty.
assert levels[1]["steady_decode_tokens_per_s"] > 0, levels[1]
print("bench pipeline:", {n: round(l["ratio_vs_one_stream"], 2) for n, l in levels.items()})
PY
