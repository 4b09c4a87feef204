# Sourced by the node test scripts (serve_node.sh, serve_cluster_node.sh). prepare_node_work WHAT: with
# `mlxd`, `src` (tests/serve), `tokenizer` and `work` set, makes the folder `work` (made absolute), installs
# the node clients there (npm ci from node/package-lock.json, beside the scripts of node/) and makes the tiny
# model in `work`/model; leaves the shell in `work`. WHAT names the test in the error message.
prepare_node_work() {
  mkdir -p "$work"
  work="$(realpath "$work")"
  cp "$src/node/package.json" "$src/node/package-lock.json" "$src/node/.npmrc" "$src"/node/*.mjs "$work/"
  cd "$work"
  if ! npm ci --no-audit --no-fund --loglevel=error; then
    echo "$1: 'npm ci' failed in $work (is the npm registry reachable?)" >&2
    exit 1
  fi
  "$mlxd" init --config "$src/data/tiny_serve.json" --seed 7 --out "$work/model" >/dev/null
  cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$work/model/"
}
