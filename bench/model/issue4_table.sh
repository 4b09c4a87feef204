#!/bin/sh
# Issue 4's speed table in one run: each model shape of the issue (15M, 110M, 1B; seeded random weights, tied
# embeddings like the issue's files) in f32, f16, q8_0 and q4_0 through `mlxd bench model`: pp512 and tg128
# at 2 threads, tg128 at 1 thread. Each figure is set beside llama.cpp's from the issue
# (llama_cpp_reference.json) and beside the decode bound from the read bandwidth the command measures in the
# same run; peak memory beside weights + KV cache + 10%.
# Usage: bench/model/issue4_table.sh [BUILD_DIR] [REPS] [SIZES] [TYPES]
#   (defaults: build, 2, "15m 110m 1b", "f32 f16 q8_0 q4_0"). JSON lines on stdout, one per model and thread
#   count, then the table; the 1B f32 model needs 4.2 GB of disk and memory.
set -eu
BUILD=${1:-build}
REPS=${2:-2}
SIZES=${3:-15m 110m 1b}
TYPES=${4:-f32 f16 q8_0 q4_0}
MLXD=$BUILD/bin/mlxd
HERE=$(dirname "$0")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for s in $SIZES; do
  "$MLXD" init --config "$HERE/llama_$s.json" --seed 1 --out "$WORK/$s" > /dev/null
  for t in $TYPES; do
    case $t in
      f32) m="$WORK/$s" ;;
      f16) m="$WORK/$s-f16.gguf" && "$MLXD" convert "$WORK/$s" "$m" --dtype f16 > /dev/null ;;
      *) m="$WORK/$s-$t.gguf" && "$MLXD" quantize "$WORK/$s" "$m" --type "$t" > /dev/null ;;
    esac
    for threads in 2 1; do
      # At 1 thread the issue compares decode only: a short prompt keeps the run short.
      p=512
      [ "$threads" = 1 ] && p=16
      out=$("$MLXD" --threads "$threads" bench model --model "$m" -p $p -n 128 -r "$REPS")
      printf '{"size":"%s","type":"%s","threads":%s,"result":%s}\n' "$s" "$t" "$threads" "$out" |
        tee -a "$WORK/lines"
    done
    [ "$t" = f32 ] || rm -f "$m"
  done
  rm -rf "${WORK:?}/$s"
done
python3 "$HERE/issue4_summary.py" "$HERE/llama_cpp_reference.json" "$WORK/lines"
