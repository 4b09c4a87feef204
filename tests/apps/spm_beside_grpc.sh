#!/bin/sh
# The mlxd binary carries gRPC (libprotobuf 3.21) and reads tokenizer.model files through libsentencepiece,
# which bundles its own protobuf-lite: both must work in one process. Trains a small SentencePiece model with
# Debian's spm_train and checks that mlxd's ids equal spm_encode's. Usage: spm_beside_grpc.sh MLXD WORK_DIR
set -eu
MLXD=$1
WORK=$2
mkdir -p "$WORK"
i=0
: > "$WORK/corpus.txt"
while [ $i -lt 400 ]; do
  echo "line $i: the quick brown fox jumps over $((i * 7)) lazy dogs, said the $((i % 13))th reader" >> "$WORK/corpus.txt"
  i=$((i + 1))
done
spm_train --input="$WORK/corpus.txt" --model_prefix="$WORK/m" --vocab_size=400 --model_type=bpe \
  --byte_fallback=true > "$WORK/train.log" 2>&1
text="the lazy reader jumps, 42 times!"
want=$(echo "$text" | spm_encode --model="$WORK/m.model" --output_format=id | tr ' ' ',')
got=$("$MLXD" tokenize --tokenizer "$WORK/m.model" "$text" | tr -d '[] ')
echo "spm_encode: $want"
echo "mlxd:       $got"
[ "$want" = "$got" ]
"$MLXD" cluster status --workers 127.0.0.1:1 2>&1 | grep -q DOWN && echo "gRPC works in the same binary"
