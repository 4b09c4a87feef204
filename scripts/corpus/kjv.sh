#!/usr/bin/env bash
# Builds the plain-text King James Bible corpus (public domain): one verse a line, 31,102 lines, about
# 4.2 MB, from Debian's bible-kjv (the `bible` program) and bible-kjv-text (its data). The verse references
# ("Ge1:1 ", "1Jo5:7 ", ...) are stripped; `--jsonl` writes {"text": verse} lines instead.
# Usage: scripts/corpus/kjv.sh OUT.txt [--jsonl]
#   (apt-get install bible-kjv bible-kjv-text first; mlxd's tests do not need them)
set -euo pipefail
out="${1:?usage: kjv.sh OUT.txt [--jsonl]}"
if ! command -v bible >/dev/null; then
  echo "kjv.sh: 'bible' is missing: apt-get install -y bible-kjv bible-kjv-text" >&2
  exit 1
fi
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
bible -f -l 100000 gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' >"$tmp"
lines=$(wc -l <"$tmp")
if [[ "$lines" != 31102 ]] || grep -qE '^[1-3]?[A-Z][a-z]*[0-9]+:[0-9]+ ' "$tmp"; then
  echo "kjv.sh: unexpected output ($lines lines, or a reference left in); is bible-kjv-text complete?" >&2
  exit 1
fi
if [[ "${2:-}" == "--jsonl" ]]; then
  /usr/bin/python3 -c 'import json, sys
for line in sys.stdin: print(json.dumps({"text": line.rstrip("\n")}))' <"$tmp" >"$out"
else
  mv "$tmp" "$out"
fi
