#!/bin/sh
# Runs `mlxd generate ... --json` twice, with the arguments before and after "--", and fails unless both give
# the same prompt, tokens and text (timings aside). Usage: same_generation.sh MLXD ARGS_A... -- ARGS_B...
set -eu
MLXD=$1
shift
a=""
while [ "$1" != "--" ]; do a="$a $1"; shift; done
shift
strip() { sed 's/"timings":{[^}]*},//'; }
# shellcheck disable=SC2086 # the argument lists are split on purpose
first=$("$MLXD" generate $a --json | strip)
second=$("$MLXD" generate "$@" --json | strip)
echo "$first"
echo "$second"
[ "$first" = "$second" ] || { echo "the two runs differ"; exit 1; }
