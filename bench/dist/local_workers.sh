# Sourced by the dist benches: with MLXD, CONFIG and THREADS set, makes WORK (removed on exit, with the
# workers), the model $WORK/model from CONFIG (seed 1), three local workers with THREADS kernel threads each
# at $A, $B and $C, and the layer ranges for 2 workers ($HALVES) and 3 ($THIRDS, the remainder to the last).
# With PIN=1 the workers, and every process a bench starts with $PIN_FLAG, pin their kernel threads.
PIN_FLAG=""
[ "${PIN:-0}" = 1 ] && PIN_FLAG=--pin-threads
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$MLXD" init --config "$CONFIG" --seed 1 --out "$WORK/model" > /dev/null
L=$(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$CONFIG")
H=$((L / 2)) T=$((L / 3)) U=$((L - (L - L / 3) / 2))
HALVES="0-$((H - 1)),$H-$((L - 1))"
THIRDS="0-$((T - 1)),$T-$((U - 1)),$U-$((L - 1))"
for w in a b c; do
  MLXD_NUM_THREADS=$THREADS "$MLXD" $PIN_FLAG worker --host 127.0.0.1 --port 0 --port-file "$WORK/$w.port" > /dev/null &
  echo $! > "$WORK/$w.pid"
done
for w in a b c; do
  while [ ! -f "$WORK/$w.port" ]; do sleep 0.1; done
done
A=127.0.0.1:$(cat "$WORK/a.port")
B=127.0.0.1:$(cat "$WORK/b.port")
C=127.0.0.1:$(cat "$WORK/c.port")
