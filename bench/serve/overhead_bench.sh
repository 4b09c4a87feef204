#!/usr/bin/env bash
# The server's own overhead with `mlxd serve` on the default model, each figure beside a baseline from the
# same run: the median latency of GET /v1/models and of a 1-token chat completion beside GET /health (the
# cheapest route: what HTTP and the server loop cost), and the requests/s wrk (Debian's wrk) gets from
# /health beside what it gets from Python's http.server on a static file (a plain HTTP server as a yardstick).
# Prints JSON.
# Usage: bench/serve/overhead_bench.sh [MLXD] [REQUESTS] [WRK_SECONDS]   (default build/bin/mlxd, 200, 5)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mlxd=${1:-$root/build/bin/mlxd}
requests=${2:-200}
seconds=${3:-5}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk (scripts/debian-packages.txt)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
MLXD_DEFAULT_MODEL=$root/models/default "$mlxd" --threads 2 serve --port 0 --port-file "$work/port" \
  >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { cat "$work/serve.log" >&2; exit 1; }
port=$(cat "$work/port")
base=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done
echo hello >"$work/static.txt"
(cd "$work" && exec python3 -m http.server --bind 127.0.0.1 0 >"$work/py.log" 2>&1) &
pids+=($!)
for _ in $(seq 1 100); do grep -q "port" "$work/py.log" 2>/dev/null && break; sleep 0.1; done
py_port=$(sed -nE 's/.*port ([0-9]+).*/\1/p' "$work/py.log" | head -1)

# median_ms METHOD URL [BODY]: the median of REQUESTS sequential requests' total times, in ms.
median_ms() {
  local args=(-s -o /dev/null -w '%{time_total}\n')
  [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' -d "$3")
  for _ in $(seq 1 "$requests"); do curl "${args[@]}" -X "$1" "$2"; done |
    sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", 1000 * v[int((NR + 1) / 2)] }'
}
health=$(median_ms GET "$base/health")
models=$(median_ms GET "$base/v1/models")
completion=$(median_ms POST "$base/v1/chat/completions" \
  '{"messages": [{"role": "user", "content": "In the beginning"}], "max_tokens": 1, "temperature": 0}')
rps() { wrk -t 2 -c 16 -d "${seconds}s" "$1" | sed -nE 's/^Requests\/sec: +([0-9.]+)/\1/p'; }
wrk_health=$(rps "$base/health")
wrk_static=$(rps "http://127.0.0.1:$py_port/static.txt")
python3 - "$health" "$models" "$completion" "$wrk_health" "$wrk_static" "$requests" "$seconds" <<'PY'
import json, os, sys
health, models, completion, wrk_health, wrk_static = map(float, sys.argv[1:6])
print(json.dumps({
    "model": "models/default", "requests": int(sys.argv[6]), "wrk": f"-t 2 -c 16 -d {sys.argv[7]}s",
    "load_average": os.getloadavg()[0],
    "health_ms_median": health,
    "models_ms_median": models, "models_vs_health": round(models / health, 2),
    "one_token_chat_ms_median": completion, "one_token_chat_vs_health": round(completion / health, 2),
    "health_requests_per_s": wrk_health, "python_http_server_static_requests_per_s": wrk_static,
    "health_vs_python_static": round(wrk_health / wrk_static, 2)}, indent=1))
PY
