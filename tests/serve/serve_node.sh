#!/usr/bin/env bash
# Runs a Node client of tests/serve/node against a real `mlxd serve` of a tiny model made by `mlxd init`. The
# client's packages (the official openai client, playwright-core) are installed with npm ci from
# node/package-lock.json into WORK. The script gets the server's base URL and model id, then EXTRA arguments.
# Usage: serve_node.sh MLXD_BIN SERVE_TEST_DIR TINY_TOKENIZER_DIR WORK SCRIPT.mjs [EXTRA...]
set -euo pipefail
mlxd="$(realpath "$1")"
src="$(realpath "$2")"
tokenizer="$(realpath "$3")"
work="$4"
script="$5"
shift 5
rm -rf "$work/model" "$work/port"
source "$src/node_work.sh"
prepare_node_work "serve node test"
"$mlxd" --threads 1 serve --model "$work/model" --model-name tiny-test --port 0 --port-file "$work/port" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  [[ -f "$work/port" ]] && curl -sf "http://127.0.0.1:$(cat "$work/port")/health" >/dev/null && break
  kill -0 $server || { echo "mlxd serve exited" >&2; exit 1; }
  sleep 0.1
done
node "$script" "http://127.0.0.1:$(cat "$work/port")" tiny-test "$@"
