#!/usr/bin/env bash
# Rebuilds models/default from nothing but Debian packages: the King James Bible corpus, a 4096-token
# byte-level BPE vocabulary learned from it, and the training run of train.yaml; then copies the model.
# Usage: recipes/default-model/recipe.sh [WORK_DIR]
#   (apt-get install -y bible-kjv bible-kjv-text first; about an hour on 2 busy cores, a run interrupted
#   resumes from its last checkpoint when started again with the same WORK_DIR)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-$root/build/default-model}
mlxd=${MLXD:-$root/build/bin/mlxd}
mkdir -p "$work"
"$root/scripts/corpus/kjv.sh" "$work/kjv.txt"
"$mlxd" tokenizer train --corpus "$work/kjv.txt" --vocab-size 4096 --out "$work/tok"
"$mlxd" train --config "$here/train.yaml" --set tokenizer="$work/tok" --set data.train="$work/kjv.txt" \
  --out "$work/run"
mkdir -p "$root/models"
rm -rf "$root/models/default"
cp -r "$work/run/model" "$root/models/default"
echo "models/default rebuilt from $work/run/model"
