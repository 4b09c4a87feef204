#!/usr/bin/python3
"""Writes data/golden.safetensors and data/golden_expected.json for safetensors_golden_test.cpp.

An independent writer of the safetensors format built from the spec with numpy, json and struct only (no mlxd
code and no safetensors package). It lays the data out in an order unlike mlxd's writer (sizes that are a multiple
of 4 first, then reverse name order), which leaves the I64 tensor misaligned, and pads the header with spaces to a
multiple of 8 bytes as the spec recommends.
The expected file lists, per tensor, the dtype, shape and either the exact bit patterns (float types) or the
values (integer and bool types). Run it from anywhere: /usr/bin/python3 tests/io/make_golden_safetensors.py
"""
import json
import os
import struct

import numpy as np


def bf16_bits(x):
    """Rounds float32 values to bfloat16 (nearest even) and returns the 16-bit patterns as uint16."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def main():
    rng = np.random.default_rng(20240601)
    f16 = rng.normal(0.0, 50.0, size=(2, 4)).astype(np.float16)
    f16.flat[:4] = [np.float16(-0.0), np.float16(np.inf), np.float16(6.0e-8), np.float16(65504.0)]
    tensors = {
        "embed.weight": ("F32", rng.normal(0.0, 1.0, size=(2, 3)).astype(np.float32)),
        "scalar": ("F32", np.array(rng.uniform(-10, 10), dtype=np.float32)),
        "empty": ("F32", np.zeros((0, 3), dtype=np.float32)),
        "half": ("F16", f16),
        "brain": ("BF16", bf16_bits(rng.normal(0.0, 1e3, size=(3,)).astype(np.float32))),
        "ids": ("I32", rng.integers(-(2**31), 2**31, size=(5,), dtype=np.int32)),
        "big": ("I64", np.array([[-(2**62) + 12345, 2**53 + 1], [7, -1]], dtype=np.int64)),
        "bytes": ("U8", rng.integers(0, 256, size=(3,), dtype=np.uint8)),
        "mask": ("BOOL", np.array([True, False, True, True], dtype=np.bool_)),
    }

    header = {"__metadata__": {"format": "pt", "writer": "make_golden_safetensors.py"}}
    blobs = []
    offset = 0
    for name in sorted(tensors, key=lambda n: (tensors[n][1].nbytes % 4 == 0, n), reverse=True):
        dtype, values = tensors[name]
        blob = np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)

    expected = {"metadata": header["__metadata__"], "tensors": {}}
    for name, (dtype, values) in tensors.items():
        entry = {"dtype": dtype, "shape": list(values.shape)}
        if dtype == "F32":
            entry["bits"] = [int(b) for b in values.reshape(-1).view(np.uint32)]
        elif dtype == "F16":
            entry["bits"] = [int(b) for b in values.reshape(-1).view(np.uint16)]
        elif dtype == "BF16":
            entry["bits"] = [int(b) for b in values.reshape(-1)]
        else:
            entry["values"] = [int(v) for v in values.reshape(-1)]
        expected["tensors"][name] = entry

    data_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "golden.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(os.path.join(data_dir, "golden_expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
