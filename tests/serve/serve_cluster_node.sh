#!/usr/bin/env bash
# Two real `mlxd worker` processes, `mlxd serve --workers` over them and a single-node `mlxd serve` of the
# same tiny model; curl checks /health, the official openai client (node/openai_cluster.mjs, installed with
# npm ci from node/package-lock.json) checks that both servers answer the same, the chat page in headless
# Chromium (node/cluster_page.mjs) lists both workers and kills one, which then shows as down (on the page,
# in /health) while the server goes on answering; the page's screenshot is left in WORK.
# Usage: serve_cluster_node.sh MLXD_BIN SERVE_TEST_DIR TINY_TOKENIZER_DIR WORK
set -euo pipefail
mlxd="$(realpath "$1")"
src="$(realpath "$2")"
tokenizer="$(realpath "$3")"
work="$4"
rm -rf "$work/model" "$work"/*.port
source "$src/node_work.sh"
prepare_node_work "serve cluster test"

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
wait_for() {  # FILE PID WHAT
  for _ in $(seq 600); do
    [[ -f "$1" ]] && return 0
    kill -0 "$2" || { echo "$3 exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "$3 did not start" >&2
  exit 1
}
for w in a b; do
  MLXD_NUM_THREADS=1 "$mlxd" worker --host 127.0.0.1 --port 0 --port-file "$work/$w.port" >/dev/null &
  pids+=($!)
  wait_for "$work/$w.port" $! "worker $w"
done
wa="127.0.0.1:$(cat "$work/a.port")"
wb="127.0.0.1:$(cat "$work/b.port")"
"$mlxd" --threads 1 serve --model "$work/model" --model-name tiny-test --port 0 --port-file "$work/local.port" &
pids+=($!)
wait_for "$work/local.port" $! "mlxd serve"
"$mlxd" --threads 1 serve --model "$work/model" --model-name tiny-test --port 0 --port-file "$work/cluster.port" \
  --workers "$wa,$wb" --layers 0,1 &
cluster=$!
pids+=($cluster)
wait_for "$work/cluster.port" $cluster "mlxd serve --workers"
local_url="http://127.0.0.1:$(cat "$work/local.port")"
cluster_url="http://127.0.0.1:$(cat "$work/cluster.port")"
for url in "$local_url" "$cluster_url"; do
  for _ in $(seq 600); do
    curl -sf "$url/health" >/dev/null && break
    kill -0 $cluster || { echo "mlxd serve --workers exited" >&2; exit 1; }
    sleep 0.1
  done
done

# Prints each worker as "ADDRESS STATUS" and the overall status, from a /health body.
workers_of() {
  node -e 'const h = JSON.parse(process.argv[1]);
    for (const w of h.workers) console.log(w.address, w.status);
    console.log("overall", h.status);' "$1"
}
health=$(curl -s "$cluster_url/health")
echo "health: $health"
states=$(workers_of "$health")
[[ "$states" == "$wa up"$'\n'"$wb up"$'\n'"overall ok" ]] || { echo "unexpected health: $states" >&2; exit 1; }
node openai_cluster.mjs "$local_url" "$cluster_url" tiny-test
curl -s "$cluster_url/metrics" | grep "^mlxd_cluster_stage_compute_seconds_total{node=\"$wa\"}"

# The chat page lists both workers, then shows $wb down once cluster_page.mjs has killed it.
node cluster_page.mjs "$cluster_url" "$wa" "$wb" "${pids[1]}" "$work/cluster_page.png"
wait "${pids[1]}" 2>/dev/null || true
code=$(curl -s -o "$work/health.json" -w '%{http_code}' "$cluster_url/health")
states=$(workers_of "$(cat "$work/health.json")")
echo "after killing $wb: $code $(cat "$work/health.json")"
[[ "$code" == 200 && "$states" == "$wa up"$'\n'"$wb down"$'\n'"overall degraded" ]] ||
  { echo "unexpected health: $code $states" >&2; exit 1; }
answer=$(curl -sf "$cluster_url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "hello", "max_tokens": 5}')
grep -q '"finish_reason":"' <<<"$answer" || { echo "no answer after the loss: $answer" >&2; exit 1; }
echo "serve cluster: both workers up, then $wb down, and still serving"
