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
