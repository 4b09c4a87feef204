#!/usr/bin/python3
"""Writes data/gguf_quant_golden.gguf for gguf_quant_test.cpp: for each of Q8_0, Q4_0, Q4_K and Q6_K, seeded
float32 values ("<type>.source", F32), their quantization by ggml_quants.py ("<type>.quantized", in that ggml type)
and its dequantization ("<type>.dequantized", F32). The sources mix normal values with blocks that are all zero,
constant, negative, dominated by one outlier, or tiny (scales that are f16 subnormals).
Run it from anywhere: /usr/bin/python3 tests/io/gguf_make_quant_golden.py
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ggml_quants import QUANTIZERS  # noqa: E402
from gguf_make_golden import STRING, U32, write_gguf  # noqa: E402

GGML_F32 = 0


def source(rng, rows, cols):
    x = rng.normal(0.0, 1.0, size=(rows, cols)).astype(np.float32)
    flat = x.reshape(-1)
    flat[0:32] = 0.0
    flat[32:64] = 0.75
    flat[64:96] = -np.abs(flat[64:96])
    flat[100] = 40.0
    flat[128:192] *= np.float32(1e-6)
    flat[cols + 7] = -25.0
    return x


def main():
    rng = np.random.default_rng(20250407)
    tensors = []
    for name, (type_id, block, quantize) in QUANTIZERS.items():
        rows, cols = 4, 2 * block
        x = source(rng, rows, cols)
        raw, deq = quantize(x)
        key = name.lower()
        tensors += [(key + ".source", [rows, cols], GGML_F32, x.tobytes()),
                    (key + ".quantized", [rows, cols], type_id, raw),
                    (key + ".dequantized", [rows, cols], GGML_F32, deq.reshape(rows, cols).tobytes())]
    metadata = [("general.architecture", STRING, "llama"), ("general.alignment", U32, 32)]
    names = [t[0] for t in tensors]
    write_gguf(os.path.join(HERE, "data", "gguf_quant_golden.gguf"), 3, metadata, tensors, 32, names, 0)


if __name__ == "__main__":
    main()
