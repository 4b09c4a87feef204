# Shared by the trainer's shell tests (sourced; sets `here`, this folder, and `corpus`): a tokenizer learned
# from the test corpus, and waiting for a background run to log steps.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
corpus=$here/data/corpus.txt

# learn_tokenizer MLXD DIR: a 320-token BPE vocabulary of the test corpus in DIR.
learn_tokenizer() {
  "$1" tokenizer train --corpus "$corpus" --vocab-size 320 --out "$2" >/dev/null
}

# wait_for_steps METRICS N: returns once METRICS holds N step lines (at most about a minute).
wait_for_steps() {
  for _ in $(seq 1 3000); do
    if [[ -f "$1" ]] && (($(grep -c '"loss"' "$1") >= $2)); then
      return 0
    fi
    sleep 0.02
  done
}

# tiny_base MLXD WORK: the tokenizer in WORK/tok and the tiny model of data/tiny.yaml pre-trained for 10 steps
# on the corpus, written in f32 to WORK/base/model (a base for the fine-tuning tests).
tiny_base() {
  learn_tokenizer "$1" "$2/tok"
  "$1" train --config "$here/data/tiny.yaml" --set tokenizer="$2/tok" --set data.train="$corpus" \
    --set run.save_dtype=f32 --steps 10 --out "$2/base" >"$2/base.log" 2>&1 || { cat "$2/base.log"; return 1; }
}

# same_metrics REL ONE.jsonl OTHER.jsonl KEY...: every step line of the two logs has each KEY equal to
# REL relative plus 1e-5 absolute; names the first that differs.
same_metrics() {
  local rel=$1 one=$2 other=$3
  shift 3
  for key in "$@"; do
    values() { grep '"loss"' "$1" | sed -E "s/.*\"$key\":([-0-9.e+]+).*/\1/"; }
    paste <(values "$one") <(values "$other") |
      awk -v key="$key" -v rel="$rel" '{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1
           if (NF != 2 || d > rel * m + 1e-5) { print key " differs: " $0; bad = 1 } } END { exit bad }' ||
      return 1
  done
}
