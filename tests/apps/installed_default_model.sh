#!/bin/sh
# Installs the build into PREFIX (cmake --install) and runs PREFIX/bin/mlxd generate with neither --model nor
# MLXD_DEFAULT_MODEL: it must find PREFIX/share/mlxd/models/default and write what the build's own binary
# writes with MODEL (the repository's models/default). PREFIX/../.. must hold no models/default.
# Usage: installed_default_model.sh CMAKE BUILD_DIR PREFIX MLXD MODEL
set -eu
cmake=$1
build=$2
prefix=$3
mlxd=$4
model=$5
rm -rf "$prefix"
"$cmake" --install "$build" --prefix "$prefix" >/dev/null
[ -f "$prefix/share/mlxd/models/default/model.safetensors" ] || { echo "no model installed in $prefix"; exit 1; }
strip() { sed 's/"timings":{[^}]*},//'; }
installed=$(env -u MLXD_DEFAULT_MODEL "$prefix/bin/mlxd" generate --prompt "In the beginning" --max-tokens 6 \
  --temperature 0 --json | strip)
reference=$("$mlxd" generate --model "$model" --prompt "In the beginning" --max-tokens 6 --temperature 0 --json | strip)
echo "installed: $installed"
echo "reference: $reference"
[ "$installed" = "$reference" ] || { echo "the installed mlxd wrote something else"; exit 1; }
echo "the installed mlxd found its default model"
