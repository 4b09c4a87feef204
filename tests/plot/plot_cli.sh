#!/bin/sh
# Usage: plot_cli.sh MLXD RUN.jsonl OUTDIR. Draws the log as SVG and PNG with `mlxd plot`, has Python's XML
# parser (an independent reader) load the SVG and count its polylines, and checks the PNG's signature.
set -e
mlxd="$1" log="$2" out="$3"
mkdir -p "$out"
"$mlxd" plot "$log" -o "$out/run.svg" --title "cli run"
"$mlxd" plot "$log" -o "$out/run.png" --width 400 --height 300
/usr/bin/python3 - "$out/run.svg" "$out/run.png" <<'PY'
import sys, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
counts = [len(p.getAttribute("points").split()) for p in doc.getElementsByTagName("polyline")]
texts = [t.firstChild.data for t in doc.getElementsByTagName("text")]
assert counts == [19, 4, 19], counts
assert "cli run" in texts and "learning rate" in texts, texts
png = open(sys.argv[2], "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR", png[:16]
w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
assert (w, h) == (400, 300), (w, h)
print("svg polylines", counts, "png", w, "x", h)
PY
