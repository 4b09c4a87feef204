#!/usr/bin/python3
"""Compares the f32 tensors of two model.safetensors files: exits 1 (naming the tensor) when any element
differs by more than ATOL + RTOL * |b|. Usage: compare_models.py A B [RTOL] [ATOL]"""
import json
import struct
import sys

import numpy


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}, not F32"
        begin, end = t["data_offsets"]
        out[name] = numpy.frombuffer(data[begin:end], dtype="<f4").reshape(t["shape"])
    return out


a, b = load(sys.argv[1]), load(sys.argv[2])
rtol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
atol = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
if sorted(a) != sorted(b):
    sys.exit(f"different tensors: {sorted(set(a) ^ set(b))}")
worst = 0.0
for name in sorted(a):
    diff = numpy.abs(a[name] - b[name])
    if (diff > atol + rtol * numpy.abs(b[name])).any():
        sys.exit(f"{name}: max difference {diff.max():.3g} exceeds atol {atol} + rtol {rtol}")
    worst = max(worst, float(diff.max()))
print(f"{len(a)} tensors match (max difference {worst:.3g})")
