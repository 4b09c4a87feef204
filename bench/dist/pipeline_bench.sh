#!/bin/sh
# Decode over a pipeline of local worker processes beside the same model on one node, in one run.
# Usage: bench/dist/pipeline_bench.sh [BUILD_DIR] [THREADS] [ROUNDS] [CONFIG] [TOKENS]
#   (defaults: build, 2, 2, llama_110m.json beside this script, 64 new tokens; llama_1b.json is the 1B shape)
# Every process (the single node, each worker, the coordinator) gets THREADS kernel threads. On one machine
# the split cannot be faster: a sequence's stages run one after another. Each round runs 1 node, 2 workers,
# 3 workers, then 3, 2, 1 (A B C C B A); the JSON lines give decode tokens/s, the decode round trip, the
# stages' compute time, and the time a hop adds ((round trip - compute) / stages). Decode goes in rings
# (protocol 1.7); with STEPS=1 each round also runs 2 and 3 workers with every token sent by the coordinator
# ("2s", "3s"), so the summary shows the ring beside its baseline; with GRPC=1 (instead) each round also runs
# 2 and 3 workers with every step on gRPC, not on local links ("2g", "3g"; protocol 1.8). With FLOOR=1 each round also runs
# split_floor (the same split over processes that pass hidden states through pipes, no gRPC) on the same
# model, and the summary gives its ratios beside the pipeline's: what the stage protocol's hops cost. With
# PIN=1 every mlxd process (the single node too, not split_floor) runs with --pin-threads.
set -eu
BUILD=${1:-build}
THREADS=${2:-2}
ROUNDS=${3:-2}
CONFIG=${4:-$(dirname "$0")/llama_110m.json}
TOKENS=${5:-64}
MLXD=$BUILD/bin/mlxd
. "$(dirname "$0")/local_workers.sh"
PROMPT=1,5,9,13,17,21,25,29,33,37,41,45,49,53,57,61
run() {
  "$MLXD" $PIN_FLAG --threads "$THREADS" generate --model "$WORK/model" --tokens $PROMPT --max-tokens "$TOKENS" --json "$@"
}
# Each pipeline generates a few tokens untimed first: its workers load their layers then, and on this VM
# fresh memory stays slow for a while after it is first touched (a 1B stage decoded 1.5-4x slower right
# after its load).
for plan in "$A,$B --layers $HALVES" "$A,$B,$C --layers $THIRDS"; do
  "$MLXD" $PIN_FLAG --threads "$THREADS" generate --model "$WORK/model" --tokens $PROMPT --max-tokens 4 \
    --workers $plan > /dev/null
done
r=0
while [ $r -lt "$ROUNDS" ]; do
  order="1 2 3 3 2 1"
  [ "${STEPS:-0}" = 1 ] && order="1 2 2s 3 3s 3s 3 2s 2 1"
  [ "${GRPC:-0}" = 1 ] && order="1 2 2g 3 3g 3g 3 2g 2 1"
  for n in $order; do
    case $n in
      1) out=$(run) ;;
      2) out=$(run --workers "$A,$B" --layers "$HALVES") ;;
      3) out=$(run --workers "$A,$B,$C" --layers "$THIRDS") ;;
      2s) out=$(run --workers "$A,$B" --layers "$HALVES" --ring-tokens 0) ;;
      3s) out=$(run --workers "$A,$B,$C" --layers "$THIRDS" --ring-tokens 0) ;;
      2g) out=$(run --workers "$A,$B" --layers "$HALVES" --local-links false) ;;
      3g) out=$(run --workers "$A,$B,$C" --layers "$THIRDS" --local-links false) ;;
    esac
    printf '{"nodes":"%s","round":%d,"pinned":%s,"result":%s}\n' "$n" "$r" "$([ -n "$PIN_FLAG" ] && echo true || echo false)" "$out" | sed 's/"logprobs":\[[^]]*\],//; s/,"tokens":\[[^]]*\]//' |
      tee -a "$WORK/lines"
  done
  [ "${FLOOR:-0}" = 1 ] && "$BUILD/bin/split_floor" "$WORK/model" "$THREADS" 1 "$TOKENS" >> "$WORK/floor"
  r=$((r + 1))
done
# Last line: per node count, the medians, and decode tokens/s as a ratio of one node's: the median over
# rounds of each round's ratio (its runs' mean over one node's in the same round), since this VM drifts by
# up to 2x within minutes (and, with STEPS=1, of the same workers' without rings; with GRPC=1, of the same
# workers' without local links; with FLOOR=1, the floor's ratio of N processes to one, paired the same way).
touch "$WORK/floor"
python3 - "$WORK/lines" "$WORK/floor" <<'PY'
import json, statistics, sys
floor = []  # per round: process count -> its runs
for line in open(sys.argv[2]):
    floor.append({})
    for r in json.loads(line)["runs"]:
        floor[-1].setdefault(str(r["processes"]), []).append(r)
runs, rounds = {}, {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    runs.setdefault(j["nodes"], []).append(j["result"]["timings"])
    rounds.setdefault(j["round"], {}).setdefault(j["nodes"], []).append(j["result"]["timings"]["decode_tokens_per_s"])
med = lambda n, k: statistics.median(t.get(k, 0) for t in runs[n])
paired = lambda n, base: statistics.median(statistics.mean(r[n]) / statistics.mean(r[base]) for r in rounds.values())
summary = {}
for n in sorted(runs):
    s = summary[n] = {"decode_tokens_per_s": med(n, "decode_tokens_per_s"), "ratio_vs_one_node": paired(n, "1"),
                      "added_ms_per_hop": med(n, "added_ms_per_hop"), "runs": len(runs[n])}
    if n + "s" in runs:
        s["ratio_vs_steps"] = paired(n, n + "s")
    if n + "g" in runs:
        s["ratio_vs_grpc"] = paired(n, n + "g")
    if floor and n in floor[0] and n != "1":
        mean = lambda f, m: statistics.mean(r["decode_tokens_per_s"] for r in f[m])
        s["floor_ratio_vs_one_process"] = statistics.median(mean(f, n) / mean(f, "1") for f in floor)
        s["floor_added_ms_per_hop"] = statistics.median(r["added_ms_per_hop"] for f in floor for r in f[n])
print(json.dumps({"summary": summary}))
PY
